import signal
import sys

try:
    from bench.cli.main import main

    code = main()
except KeyboardInterrupt:  # Ctrl-C while the command line is still being imported or parsed
    sys.stderr.write("bench: interrupted\n")
    code = 130
if code == 130:  # interrupted: a second Ctrl-C during the interpreter's exit is not an error
    signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(code)
