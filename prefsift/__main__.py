"""`python -m prefsift ...` (also what `torchrun -m prefsift` starts): the `prefsift` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
