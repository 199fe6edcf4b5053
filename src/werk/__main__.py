"""``python -m werk`` runs the ``werk`` command line."""

import sys

from werk.cli.main import main

sys.exit(main())
