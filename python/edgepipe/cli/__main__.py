"""``python -m edgepipe.cli`` runs the command line (the same as ``edgepipe``)."""

import sys

from .main import main

sys.exit(main())
