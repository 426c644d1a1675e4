"""``python -m skft``: the same as the ``skft`` command."""

import sys

from .cli.main import main

sys.exit(main())
