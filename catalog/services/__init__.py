"""Writes of the catalog, the public face other apps use (with catalog.selectors)."""

from .products import *  # noqa: F401,F403
from .vault import *  # noqa: F401,F403
from .stock import *  # noqa: F401,F403
from .suppliers import *  # noqa: F401,F403
from .reusable import *  # noqa: F401,F403
from .card_keys import *  # noqa: F401,F403
