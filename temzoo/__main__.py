"""``python -m temzoo``."""

import sys

from temzoo.cli import main

if __name__ == "__main__":
    sys.exit(main())
