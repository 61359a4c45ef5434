"""The inline stylesheet of every HTML page the harness writes (no external resources)."""

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.verdict { font-size: 1.15em; background: #f4f7fb; border-left: 5px solid #1f6fb4;
           padding: 0.8em 1em; }
.verdict li { margin: 0.3em 0; }
.warn { background: #fff6e5; border-left: 5px solid #e8a00a; padding: 0.5em 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.sync { color: #1f6fb4; font-weight: bold; } .async { color: #e8710a; font-weight: bold; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""
