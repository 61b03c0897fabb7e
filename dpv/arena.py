"""`python -m dpv.arena`: the entry point; the code is in `dpv.play.arena`."""
import sys

from dpv.play.arena import main

if __name__ == "__main__":
    sys.exit(main())
