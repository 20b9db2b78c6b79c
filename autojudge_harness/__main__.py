"""``python -m autojudge_harness`` = the ``autojudge`` command."""

import sys

from .cli import main

if __name__ == "__main__":   # not when a spawned worker (vLLM's) re-imports the main module as __mp_main__
    sys.exit(main())
