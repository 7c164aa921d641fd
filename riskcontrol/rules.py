"""The rules with their shipped defaults, and a short in-process cache of the merchant's edits.

The database row overrides the default; a rule with no row runs with its default, so a fresh
database (or one a test flushed) is still protected. Edits reach every process within
``CACHE_SECONDS``; the process that saves sees them at once.
"""

import time
from dataclasses import dataclass
from decimal import Decimal

from .models import Action, RiskRule, RuleCode

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Rule:
    code: str
    is_enabled: bool
    threshold: Decimal
    window_minutes: int
    action: str


DEFAULT_RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in [
        # More than 5 orders from one IP (or one device) within 10 minutes.
        Rule(RuleCode.IP_VELOCITY, True, Decimal(5), 10, Action.REVIEW),
        Rule(RuleCode.DEVICE_VELOCITY, True, Decimal(5), 10, Action.REVIEW),
        # More than 3 orders of the same product by the same buyer within a day.
        Rule(RuleCode.REPEAT_PURCHASE, True, Decimal(3), 24 * 60, Action.REVIEW),
        Rule(RuleCode.SELF_REFERRAL, True, Decimal(0), 0, Action.REVIEW),
        Rule(RuleCode.ORDER_AMOUNT_LIMIT, True, Decimal(5000), 0, Action.BLOCK),
        Rule(RuleCode.BUYER_DAILY_LIMIT, True, Decimal(20000), 0, Action.BLOCK),
        Rule(RuleCode.DISTRIBUTOR_DAILY_LIMIT, True, Decimal(20000), 0, Action.REVIEW),
        # A docking site's API orders (ADR 0019): more than 300 within 10 minutes from one site
        # (its own ``order_limit`` overrides the count). They share the site's contact and IP,
        # so the buyer rules above (IP, device, repeat, buyer day total) do not apply to them.
        Rule(RuleCode.DOCKING_VELOCITY, True, Decimal(300), 10, Action.REVIEW),
        # Scans: 2 or more distributors sharing a device / IP / payout account within 30 days;
        # 10 or more new direct recruits within 7 days and no sale in the team.
        Rule(RuleCode.LINKED_ACCOUNTS, True, Decimal(2), 30 * 24 * 60, Action.REVIEW),
        Rule(RuleCode.FAKE_RECRUITING, True, Decimal(10), 7 * 24 * 60, Action.REVIEW),
        # Scans over 30 days: a distributor's commission above 30 % of the real (paid, not
        # refunded) sales of their team; or, of at least 5 commissioned orders, more than 80 %
        # bought by one buyer (contact) or from one device.
        Rule(RuleCode.COMMISSION_OUT_OF_LINE, True, Decimal(30), 30 * 24 * 60, Action.REVIEW),
        Rule(RuleCode.COMMISSION_CONCENTRATED, True, Decimal(80), 30 * 24 * 60, Action.REVIEW),
        # Guessing: more than 30 failed look-ups from one IP or device within an hour (above the
        # look-up's own lock-out of 20 per IP per 15 minutes, across order numbers); more
        # than 20 order / card-key pages asked for without access within 10 minutes. Blocked
        # for the rule's window.
        Rule(RuleCode.LOOKUP_GUESSING, True, Decimal(30), 60, Action.BLOCK),
        Rule(RuleCode.PAGE_GUESSING, True, Decimal(20), 10, Action.BLOCK),
    ]
}

_cache: dict = {"at": 0.0, "rules": None}


def clear_rule_cache() -> None:
    _cache["at"], _cache["rules"] = 0.0, None


def active_rules() -> dict[str, Rule]:
    now = time.monotonic()
    rules = _cache["rules"]
    if rules is not None and now - _cache["at"] < CACHE_SECONDS:
        return rules
    rules = dict(DEFAULT_RULES)
    for row in RiskRule.objects.all():
        rules[row.code] = Rule(
            row.code, row.is_enabled, row.threshold, row.window_minutes, row.action
        )
    _cache["rules"], _cache["at"] = rules, now
    return rules


def ensure_default_rules(**kwargs) -> None:
    """post_migrate: one row per rule so the merchant sees and tunes every one."""
    for rule in DEFAULT_RULES.values():
        RiskRule.objects.get_or_create(
            code=rule.code,
            defaults={
                "is_enabled": rule.is_enabled,
                "threshold": rule.threshold,
                "window_minutes": rule.window_minutes,
                "action": rule.action,
            },
        )
    clear_rule_cache()
