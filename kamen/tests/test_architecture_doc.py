"""docs/architecture.md's walk of an order names, step by step, the function that does each
step: every name it gives must exist, so the walk cannot drift from the code unnoticed."""

import importlib
import pathlib
import re

import pytest
from django.dispatch import Signal

APPS = ("orders", "commissions", "riskcontrol", "distribution", "catalog", "kamen")
DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
NAME = re.compile(r"`((?:" + "|".join(APPS) + r")(?:\.\w+)+)`")


def _names_in_the_walk() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    walk = text[text.index("## The walk of an order") :]
    return sorted(set(NAME.findall(walk)))


def _resolve(dotted: str):
    """The object ``dotted`` names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(dotted)


def test_the_walk_names_the_pipelines_steps():
    names = _names_in_the_walk()
    assert len(names) >= 25
    for step in (
        "orders.services.checkout.place_order",
        "orders.services.payments.record_payment_notification",
        "orders.services.fulfilment.fulfil_order",
        "commissions.services.split.split_commissions",
        "distribution.services.sales.order_sale_statements",
        "riskcontrol.services.cases.open_review_case",
    ):
        assert step in names


@pytest.mark.parametrize("dotted", _names_in_the_walk())
def test_every_function_the_walk_names_exists(dotted):
    named = _resolve(dotted)
    assert callable(named) or isinstance(named, Signal), f"{dotted} in docs/architecture.md is no function"


def test_a_name_that_does_not_exist_is_caught():
    with pytest.raises((AttributeError, ModuleNotFoundError)):
        _resolve("orders.services.checkout.no_such_step")
