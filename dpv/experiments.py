"""`python -m dpv.experiments`: the entry point; the code is in `dpv.play.experiments`."""
import sys

from dpv.play.experiments import main

if __name__ == "__main__":
    sys.exit(main())
