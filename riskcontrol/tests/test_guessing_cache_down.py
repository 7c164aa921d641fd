"""With Redis down, a guessing block still holds: it is kept in this process until the cache
answers again (``kamen.security.counters``), instead of being lost."""

import pytest

from kamen.security import counters
from orders.tests.postsale_helpers import make_order
from riskcontrol.models import Action, RuleCode

from .test_guessing import LOOKUP, REFUSED, failed_lookup, set_rule

pytestmark = pytest.mark.django_db


class DownCache:
    def __getattr__(self, name):
        def broken(*args, **kwargs):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        return broken


@pytest.fixture(autouse=True)
def redis_down(monkeypatch):
    counters.reset()
    monkeypatch.setattr("kamen.security.cache", DownCache())
    monkeypatch.setattr("riskcontrol.guessing.cache", DownCache(), raising=False)  # before: its own
    yield
    counters.reset()


def test_with_the_cache_down_a_blocked_guesser_is_still_refused_even_with_the_right_password(client):
    set_rule(RuleCode.LOOKUP_GUESSING, threshold=3, window_minutes=30, action=Action.BLOCK)
    order = make_order(password="right-password")
    statuses = [failed_lookup(client, number).status_code for number in range(4)]

    form = {"mode": "order_no", "identifier": order.order_no, "password": "right-password"}
    right = client.post(LOOKUP, form, REMOTE_ADDR="198.51.100.66")

    assert statuses == [400, 400, 400, 429]
    assert right.status_code == 429 and REFUSED in right.content.decode()
