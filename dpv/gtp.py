"""`python -m dpv.gtp`: the entry point; the code is in `dpv.play.gtp`."""
import sys

from dpv.play.gtp import main

if __name__ == "__main__":
    sys.exit(main())
