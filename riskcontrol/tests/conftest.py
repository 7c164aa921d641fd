import pytest

from riskcontrol.rules import clear_rule_cache


@pytest.fixture(autouse=True)
def fresh_rules():
    clear_rule_cache()
    yield
    clear_rule_cache()


@pytest.fixture
def product(db):
    from distribution.tests.factories import ProductFactory

    return ProductFactory()


@pytest.fixture
def risk_staff(db):
    from kamen.roles import RISK
    from kamen.tests.factories import StaffFactory

    return StaffFactory(username="risk", roles=[RISK])


@pytest.fixture(autouse=True)
def empty_cache():
    """Daily counters and login throttles live in the cache (Redis db of this worktree)."""
    from django.core.cache import cache

    cache.clear()
    yield
