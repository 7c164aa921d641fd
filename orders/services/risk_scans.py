"""Scheduled scans over the distributor network: linked accounts, fake recruiting, and
commission out of line with sales (too much commission for the team's real sales, or
commission earned on orders that few buyers or devices placed).

They find what no single checkout shows. Each finding is a ``RiskEvent`` on the distributor,
once per finding per day (``dedupe_key``), and the rule's action is carried out: freeze the
commissions, blacklist the distributor, or only flag for review.

They read the orders, the commissions and the network and act on riskcontrol and commissions,
so they live in the top layer (orders); the rules and events are riskcontrol's.
"""

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from commissions.models import Commission, CommissionStatus, PayoutAccount
from commissions.services import reveal_payout_account
from distribution.models import Distributor
from distribution.selectors import sold_statuses
from orders.models import Order
from riskcontrol.models import Action, BlacklistKind, RiskEvent, RiskSignal, RuleCode, SignalKind
from riskcontrol.rules import active_rules
from riskcontrol.services.assessment import freeze_distributor_commissions
from riskcontrol.services.blacklist import add_to_blacklist
from riskcontrol.services.signals import mask_contact, payment_account_index, record_distributor_signal

logger = logging.getLogger(__name__)
# Below this much commission in the window a ratio says nothing (one refunded order of a new
# distributor); a concentration needs this many commissioned orders to be one.
MIN_COMMISSION_FOR_RATIO = Decimal("50.00")
MIN_COMMISSIONED_ORDERS = 5
SCAN_LIMIT = 500
LINK_FIELDS = (
    ("device_id", _("设备")),
    ("ip", "IP"),
    ("payment_account_index", _("收款账户")),
)


def _record_finding(
    *, rule, distributor_id: int, matched_on: str, explanation: str, key: str
) -> RiskEvent | None:
    """One event per finding per day; the rule's action carried out the first time only."""
    dedupe_key = f"{rule.code}:{key}:{distributor_id}:{timezone.localdate():%Y%m%d}"[
        :120
    ]
    try:
        with transaction.atomic():
            event = RiskEvent.objects.create(
                rule=rule.code,
                action=rule.action,
                distributor_id=distributor_id,
                matched_on=matched_on[:32],
                explanation=explanation[:300],
                dedupe_key=dedupe_key,
            )
    except IntegrityError:
        return None
    outcome = ""
    if rule.action == Action.FREEZE_COMMISSIONS:
        outcome = freeze_distributor_commissions(
            distributor_id=distributor_id, reason=explanation[:200]
        )
    elif rule.action in (Action.BLACKLIST, Action.BLOCK):
        add_to_blacklist(
            kind=BlacklistKind.DISTRIBUTOR,
            value=str(distributor_id),
            reason=explanation[:200],
            actor=None,
        )
        outcome = _("已拉黑该分销商")
    if outcome:
        event.outcome = outcome[:200]
        RiskEvent.objects.filter(pk=event.pk).update(outcome=event.outcome)
    return event


def _sync_payout_accounts() -> None:
    """Payout accounts are encrypted by the commissions app; index the new ones here (blind
    index only) so the scan can compare them."""
    known = set(
        RiskSignal.objects.filter(kind=SignalKind.PAYOUT_ACCOUNT).values_list(
            "distributor_id", "payment_account_index"
        )
    )
    for account in PayoutAccount.objects.filter(is_active=True).only(
        "distributor_id", "account_ciphertext", "account_key_id"
    ):
        try:
            plain = reveal_payout_account(account)
        except Exception:  # noqa: BLE001 — one unreadable account must not stop the scan
            logger.warning(
                "riskcontrol.payout_account_unreadable", extra={"account": account.pk}
            )
            continue
        if (account.distributor_id, payment_account_index(plain)) not in known:
            record_distributor_signal(
                kind=SignalKind.PAYOUT_ACCOUNT,
                distributor_id=account.distributor_id,
                payment_account=plain,
            )


def scan_linked_accounts() -> list[RiskEvent]:
    """Distributors sharing a device, an IP or a payout account (at least ``threshold`` of
    them within the window) — sock puppets farming commission."""
    rule = active_rules()[RuleCode.LINKED_ACCOUNTS]
    if not rule.is_enabled:
        return []
    _sync_payout_accounts()
    since = timezone.now() - timedelta(minutes=max(rule.window_minutes, 1))
    minimum = max(int(rule.threshold), 2)
    own = RiskSignal.objects.filter(
        kind__in=[SignalKind.SIGNUP, SignalKind.LOGIN, SignalKind.PAYOUT_ACCOUNT],
        distributor_id__isnull=False,
        created_at__gte=since,
    )
    events = []
    for field, label in LINK_FIELDS:
        shared = (
            own.exclude(**{f"{field}__isnull": True})
            .exclude(**{field: ""})
            .values(field)
            .annotate(people=Count("distributor_id", distinct=True))
            .filter(people__gte=minimum)
        )
        for row in shared[:500]:
            value = row[field]
            ids = sorted(
                set(
                    own.filter(**{field: value}).values_list(
                        "distributor_id", flat=True
                    )
                )
            )
            shown = str(value) if field == "ip" else str(value)[:8] + "…"
            for distributor_id in ids:
                others = ", ".join(f"#{pk}" for pk in ids if pk != distributor_id)
                event = _record_finding(
                    rule=rule,
                    distributor_id=distributor_id,
                    matched_on=field,
                    explanation=_(
                        "关联账户：与分销商 %(others)s 共用%(label)s（%(value)s）"
                    )
                    % {"others": others, "label": label, "value": shown},
                    key=f"{field}:{str(value)[:40]}",
                )
                if event is not None:
                    events.append(event)
    return events


def scan_fake_recruiting() -> list[RiskEvent]:
    """Distributors whose direct team grew by ``threshold`` or more within the window while
    no one in their subtree sold anything in it."""
    rule = active_rules()[RuleCode.FAKE_RECRUITING]
    if not rule.is_enabled:
        return []
    since = timezone.now() - timedelta(minutes=max(rule.window_minutes, 1))
    minimum = max(int(rule.threshold), 1)
    growing = (
        Distributor.objects.annotate(
            recruits=Count("children", filter=Q(children__joined_at__gte=since))
        )
        .filter(recruits__gte=minimum)
        .only("pk", "tree_id", "lft", "rght")
    )
    events = []
    for distributor in growing[:500]:
        team = Distributor.objects.filter(
            tree_id=distributor.tree_id,
            lft__gte=distributor.lft,
            rght__lte=distributor.rght,
        ).values("pk")
        has_sales = Order.objects.filter(
            distributor_id__in=team, status__in=sold_statuses(), created_at__gte=since
        ).exists()
        if has_sales:
            continue
        event = _record_finding(
            rule=rule,
            distributor_id=distributor.pk,
            matched_on="team_growth",
            explanation=_(
                "虚假拉新：%(days)s 天内新增直属下级 %(count)s 人，团队无任何成交"
            )
            % {
                "days": max(rule.window_minutes // 1440, 1),
                "count": distributor.recruits,
            },
            key="growth",
        )
        if event is not None:
            events.append(event)
    return events


def _earned_commissions(since):
    """Commissions (not cancelled, net of reversals) created since ``since``."""
    return Commission.objects.filter(created_at__gte=since).exclude(
        status=CommissionStatus.CANCELLED
    )


def scan_commission_out_of_line() -> list[RiskEvent]:
    """Distributors whose commission within the window is more than ``threshold`` percent of
    the real sales of their subtree (paid minus refunded, orders that count as sales) — a
    refunded order whose commission stayed, bonuses without the sales behind them."""
    rule = active_rules()[RuleCode.COMMISSION_OUT_OF_LINE]
    if not rule.is_enabled:
        return []
    since = timezone.now() - timedelta(minutes=max(rule.window_minutes, 1))
    earners = (
        _earned_commissions(since)
        .values("beneficiary_id")
        .annotate(earned=Sum(F("amount") - F("reversed_amount")))
        .filter(earned__gte=MIN_COMMISSION_FOR_RATIO)
        .order_by("-earned")
    )
    nodes = {
        row["pk"]: row
        for row in Distributor.objects.filter(
            pk__in=[row["beneficiary_id"] for row in earners[:SCAN_LIMIT]]
        ).values("pk", "tree_id", "lft", "rght")
    }
    events = []
    for row in earners[:SCAN_LIMIT]:
        node = nodes.get(row["beneficiary_id"])
        if node is None:
            continue
        team = Distributor.objects.filter(
            tree_id=node["tree_id"], lft__gte=node["lft"], rght__lte=node["rght"]
        ).values("pk")
        sales = Order.objects.filter(
            distributor_id__in=team, status__in=sold_statuses(), created_at__gte=since
        ).aggregate(total=Sum(F("paid_amount") - F("refunded_amount")))["total"] or Decimal(0)
        earned = row["earned"]
        share = (earned * 100 / sales) if sales > 0 else None
        if share is not None and share <= rule.threshold:
            continue
        event = _record_finding(
            rule=rule,
            distributor_id=node["pk"],
            matched_on="commission_ratio",
            explanation=_(
                "佣金与销售不相称：%(days)s 天内获得佣金 ¥%(earned)s，团队真实销售 ¥%(sales)s"
                "（佣金占 %(share)s），超过 %(limit)s%%"
            )
            % {
                "days": max(rule.window_minutes // 1440, 1),
                "earned": earned,
                "sales": sales,
                "share": f"{share:.0f}%" if share is not None else "—",
                "limit": int(rule.threshold),
            },
            key="ratio",
        )
        if event is not None:
            events.append(event)
    return events


def scan_commission_concentration() -> list[RiskEvent]:
    """Distributors with at least ``MIN_COMMISSIONED_ORDERS`` commissioned orders in the window
    of which more than ``threshold`` percent were bought by one buyer (contact) or from one
    device — sock-puppet purchases farming commission."""
    rule = active_rules()[RuleCode.COMMISSION_CONCENTRATED]
    if not rule.is_enabled:
        return []
    since = timezone.now() - timedelta(minutes=max(rule.window_minutes, 1))
    commissioned = _earned_commissions(since).filter(order__isnull=False)
    earners = (
        commissioned.values("beneficiary_id")
        .annotate(orders=Count("order_id", distinct=True))
        .filter(orders__gte=MIN_COMMISSIONED_ORDERS)
        .order_by("-orders")
    )
    events = []
    for row in earners[:SCAN_LIMIT]:
        order_ids = commissioned.filter(beneficiary_id=row["beneficiary_id"]).values("order_id")
        total = row["orders"]
        top_contact = (
            Order.objects.filter(pk__in=order_ids)
            .values("contact")
            .annotate(n=Count("id"))
            .order_by("-n")
            .first()
        )
        top_device = (
            RiskSignal.objects.filter(
                kind=SignalKind.CHECKOUT,
                order_no__in=Order.objects.filter(pk__in=order_ids).values("order_no"),
            )
            .exclude(device_id="")
            .values("device_id")
            .annotate(n=Count("order_no", distinct=True))
            .order_by("-n")
            .first()
        )
        candidates = []
        if top_contact:
            candidates.append(("contact", _("买家"), mask_contact(top_contact["contact"]), top_contact["n"]))
        if top_device:
            candidates.append(("device", _("设备"), top_device["device_id"][:8] + "…", top_device["n"]))
        for matched_on, label, shown, count in candidates:
            share = Decimal(count * 100) / total
            if share <= rule.threshold:
                continue
            event = _record_finding(
                rule=rule,
                distributor_id=row["beneficiary_id"],
                matched_on=matched_on,
                explanation=_(
                    "佣金集中：%(days)s 天内 %(total)s 笔带佣订单中 %(count)s 笔（%(share)s）"
                    "来自同一%(label)s（%(value)s），超过 %(limit)s%%"
                )
                % {
                    "days": max(rule.window_minutes // 1440, 1),
                    "total": total,
                    "count": count,
                    "share": f"{share:.0f}%",
                    "label": label,
                    "value": shown,
                    "limit": int(rule.threshold),
                },
                key=matched_on,
            )
            if event is not None:
                events.append(event)
            break
    return events


def run_scans() -> dict[str, int]:
    return {
        "linked_accounts": len(scan_linked_accounts()),
        "fake_recruiting": len(scan_fake_recruiting()),
        "commission_out_of_line": len(scan_commission_out_of_line()),
        "commission_concentrated": len(scan_commission_concentration()),
    }
