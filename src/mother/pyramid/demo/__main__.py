"""``python -m mother.pyramid.demo``: the same as ``mother demo``."""

import sys

from mother.cli import main

raise SystemExit(main(["demo", *sys.argv[1:]]))
