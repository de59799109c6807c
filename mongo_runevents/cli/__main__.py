"""``python -m mongo_runevents.cli``: the ``mongo-runevents`` command line."""

import sys

from . import main

sys.exit(main())
