"""Mother's legacy import surface: ``from mother.mothers import *``."""

from . import *  # noqa: F403
from . import __all__  # noqa: F401
