"""``python -m sessionkit`` is the ``sessionkit`` command."""

import sys

from .cli import main

sys.exit(main())
