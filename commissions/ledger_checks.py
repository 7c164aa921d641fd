"""More checks for ``manage.py reconcile_ledger``, registered by the apps above this one.

The ledger cannot see orders (this app never imports ``orders``), so the orders app registers
what it knows must be in the books — every paid order's payment lines, every delivered key's
cost line (docs/adr/0020) — at start-up, and the command runs every registered check."""

from collections.abc import Callable

_CHECKS: list[Callable[[], list[str]]] = []


def register_ledger_check(check: Callable[[], list[str]]) -> None:
    """``check()`` returns one sentence per problem found (empty: all well)."""
    if check not in _CHECKS:
        _CHECKS.append(check)


def run_ledger_checks() -> list[str]:
    problems: list[str] = []
    for check in _CHECKS:
        problems.extend(check())
    return problems
