"""``python -m edgepipe.ota`` runs the ``edgepipe ota`` commands."""

import sys

from .cli import main

sys.exit(main())
