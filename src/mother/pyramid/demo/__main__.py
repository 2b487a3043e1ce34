"""``python -m mother.pyramid.demo``: the same as ``mother demo``."""

from .serve import main

raise SystemExit(main())
