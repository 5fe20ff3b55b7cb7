"""`python -m audience.cli`: the same as the `audience` command."""

import sys

from audience.cli import main

sys.exit(main())
