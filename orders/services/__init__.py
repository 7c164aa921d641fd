"""Writes of the orders app, its public face (with orders.selectors)."""

from .state import *  # noqa: F401,F403
