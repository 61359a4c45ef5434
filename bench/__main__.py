import signal
import sys

try:
    from bench.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while the command line is still being imported
    sys.stderr.write("bench: interrupted\n")
    sys.exit(130)

code = main()
if code == 130:  # interrupted: a second Ctrl-C during the interpreter's exit is not an error
    signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(code)
