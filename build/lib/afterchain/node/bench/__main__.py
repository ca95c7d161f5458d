"""`python -m afterchain.node.bench NAME [ARGS]`: run one benchmark (see `node.bench`)."""

from __future__ import annotations

import sys

from afterchain.node.bench import main

sys.exit(main(sys.argv[1:]))
