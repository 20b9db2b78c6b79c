"""``python -m autojudge_harness`` = the ``autojudge`` command."""

import sys

from .cli import main

sys.exit(main())
