"""Writes of the orders app, its public face (with orders.selectors)."""

from .checkout import *  # noqa: F401,F403
from .deposits import *  # noqa: F401,F403
from .expiry import *  # noqa: F401,F403
from .fulfilment import *  # noqa: F401,F403
from .payments import *  # noqa: F401,F403
from .refunds import *  # noqa: F401,F403
from .staff_actions import *  # noqa: F401,F403
from .state import *  # noqa: F401,F403
from .stock_purchase import *  # noqa: F401,F403
from .top_ups import *  # noqa: F401,F403
