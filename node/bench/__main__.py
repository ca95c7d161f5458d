"""`python -m node.bench NAME [ARGS]`: run one benchmark (see `node.bench`)."""

from __future__ import annotations

import sys

from . import main

sys.exit(main(sys.argv[1:]))
