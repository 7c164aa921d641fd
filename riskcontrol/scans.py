"""Scheduled scans over the distributor network: linked accounts and fake recruiting.

They find what no single checkout shows. Each finding is a ``RiskEvent`` on the distributor,
once per finding per day (``dedupe_key``), and the rule's action is carried out: freeze the
commissions, blacklist the distributor, or only flag for review.
"""

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import Action, BlacklistKind, RiskEvent, RiskSignal, RuleCode, SignalKind
from .rules import active_rules

logger = logging.getLogger(__name__)
LINK_FIELDS = (
    ("device_id", _("设备")),
    ("ip", "IP"),
    ("payment_account_index", _("收款账户")),
)


def _record_finding(
    *, rule, distributor_id: int, matched_on: str, explanation: str, key: str
) -> RiskEvent | None:
    """One event per finding per day; the rule's action carried out the first time only."""
    from .services import add_to_blacklist, freeze_distributor_commissions

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
        RiskEvent.objects.filter(pk=event.pk).update(outcome=outcome[:200])
    return event


def _sync_payout_accounts() -> None:
    """Payout accounts are encrypted by the commissions app; index the new ones here (blind
    index only) so the scan can compare them. Skipped when commissions offers none."""
    try:
        from commissions.services import reveal_payout_account

        from commissions.models import PayoutAccount
    except ImportError:
        return
    from .services import payment_account_index, record_distributor_signal

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
    from distribution.models import Distributor
    from distribution.selectors import sold_statuses
    from orders.models import Order

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


def run_scans() -> dict[str, int]:
    return {
        "linked_accounts": len(scan_linked_accounts()),
        "fake_recruiting": len(scan_fake_recruiting()),
    }
