"""`python -m dpv.gtp`: the entry point; the engine is `dpv.play.gtp`, its command line `dpv.play.gtp_cli`."""
import sys

from dpv.play.gtp_cli import main

if __name__ == "__main__":
    sys.exit(main())
