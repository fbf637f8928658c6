"""``python -m orchestrator_store [--db PATH|URL] [--demo]``."""

import sys

from .demo import main

sys.exit(main())
