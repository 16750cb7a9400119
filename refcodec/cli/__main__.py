"""``python -m refcodec.cli``: the ``refcodec`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
