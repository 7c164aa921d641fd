"""The per-order split: who earns what on one delivered order.

``split_commissions(order=...)`` reads the order's attribution snapshot — the distributor and
the chain above them as they were at checkout — never the live tree, so moving a distributor
later changes nothing already earned. Level 1 is the attributed distributor, levels 2 and 3
their snapshot ancestors, cut at the merchant's commission depth (never more than 3). Each
beneficiary's rule is looked up by their current grade (product+grade, product, grade, general
rule, then the grade's own level rates).

Rounding (docs/adr/0001): every line rounds down to the fen; the remainder stays with the
merchant, so the lines plus the merchant's remainder equal the base exactly. If the lines
exceed the merchant's caps (total share per order; share of the margin including the
sub-store price difference) they are scaled down to the cap and a ``CapEvent`` records it.

It runs in the caller's transaction (the lead moves the call into the delivery transaction at
merge) or its own (the ``order_completed`` receiver). The order row is locked and existing
rows are returned, and ``UniqueConstraint(order, beneficiary, kind)`` is the backstop, so a
second call — or both paths — pays once.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, F, Q, Subquery, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from kamen.money import ZERO, to_fen

from ..models import (
    BASIS_POINTS,
    MAX_LEVELS,
    Account,
    AccountKind,
    Campaign,
    CapEvent,
    Commission,
    CommissionBase,
    CommissionKind,
    CommissionPolicy,
    CommissionRule,
    CommissionTier,
    ProductBonus,
    RuleMode,
    TierMode,
    TierPeriod,
    TransactionKind,
)
from .ledger import (
    Posting,
    accounts_of_kind,
    credit,
    debit,
    merchant_account,
    post_journal_transactions,
)
from .rules import get_policy, resolve_rule

_LOOK_UP = object()  # plan_split: "read it yourself"


@dataclass
class PlannedLine:
    beneficiary_id: int
    kind: str
    level: int
    rule: CommissionRule | None
    description: str
    rate_bp: int
    amount: Decimal


def commission_base(order, policy) -> Decimal:
    paid = Decimal(order.paid_amount)
    if policy.base == CommissionBase.MARGIN:
        return max(paid - Decimal(order.cost_amount or 0), ZERO)
    return paid


def beneficiary_chain(order, depth: int) -> list[int]:
    """[level 1, level 2, level 3] distributor ids from the snapshot, cut at ``depth``."""
    snapshot = order.attribution or {}
    first = snapshot.get("distributor_id") or order.distributor_id
    if not first:
        return []
    chain = [int(first)] + [int(pk) for pk in (snapshot.get("chain") or [])]
    return chain[: min(depth, MAX_LEVELS)]


def is_self_purchase(order) -> bool:
    """The checkout hook may mark the order as bought by the attributed distributor
    (``attribution["self_purchase"]`` or ``attribution["buyer_distributor_id"]``)."""
    snapshot = order.attribution or {}
    buyer = snapshot.get("buyer_distributor_id")
    return bool(snapshot.get("self_purchase")) or (
        buyer is not None and buyer == snapshot.get("distributor_id")
    )


def _commission_depth() -> int:
    """The merchant's depth (1–3) from the distribution settings, never more than 3."""
    from distribution.services.pricing import commission_depth

    return min(int(commission_depth()), MAX_LEVELS)


def _sub_store_difference(order, distributors) -> tuple[Decimal, Decimal]:
    """(price difference 差价, the seller's unit cost) of a sub-store sale: what the buyer paid
    over the seller's cost. The cost is the one checkout snapshotted (``seller_unit_cost``);
    orders from before that snapshot existed use today's."""
    snapshot = order.attribution or {}
    if not snapshot.get("sub_store") or not order.distributor_id:
        return ZERO, ZERO
    if snapshot.get("seller_unit_cost") is not None:
        unit_cost = Decimal(str(snapshot["seller_unit_cost"]))
    else:
        distributor = distributors.get(int(snapshot.get("distributor_id") or order.distributor_id))
        if distributor is None:
            return ZERO, ZERO
        from distribution.services.pricing import cost_price_for

        unit_cost = cost_price_for(distributor=distributor, product=order.product, quantity=order.quantity)
    return max(Decimal(order.paid_amount) - unit_cost * order.quantity, ZERO), unit_cost


def _period_start(policy, moment):
    local = timezone.localtime(moment)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if policy.tier_period == TierPeriod.MONTH:
        return start
    if policy.tier_period == TierPeriod.QUARTER:
        return start.replace(month=(local.month - 1) // 3 * 3 + 1)
    return None


def tiered_rate(order, distributor, policy, moment) -> tuple[Decimal, str] | None:
    """The seller's 阶梯 rate (basis points, possibly fractional in marginal mode) for this
    order, from their own sales in the period before it; None when no tiers apply."""
    from distribution.selectors import sold_statuses
    from orders.models import Order

    candidates = list(
        CommissionTier.objects.filter(
            Q(grade_id=distributor.grade_id) | Q(grade__isnull=True)
        ).order_by("lower_bound")
    )
    # the grade's own tiers win over the general ones
    tiers = [t for t in candidates if t.grade_id == distributor.grade_id] or candidates
    if not tiers:
        return None
    sales = Order.objects.filter(
        distributor_id=distributor.pk, status__in=sold_statuses()
    ).exclude(pk=order.pk)
    start = _period_start(policy, moment)
    if start is not None:
        sales = sales.filter(paid_at__gte=start)
    sales = sales.filter(paid_at__lte=moment)
    before = (
        sales.aggregate(total=Sum(F("paid_amount") - F("refunded_amount")))["total"]
        or ZERO
    )
    volume = Decimal(order.paid_amount)
    after = before + volume
    if policy.tier_mode == TierMode.WHOLE or volume <= 0:
        rate = Decimal(
            next(t for t in reversed(tiers) if t.lower_bound <= after).rate_bp
        )
    else:
        weighted = ZERO
        for tier in tiers:
            upper = tier.upper_bound if tier.upper_bound is not None else after
            overlap = min(after, upper) - max(before, tier.lower_bound)
            if overlap > 0:
                weighted += overlap * tier.rate_bp
        rate = weighted / volume
    description = _("阶梯佣金 %(rate)s%%（本期此前销售 ¥%(sales)s）") % {
        "rate": f"{rate / 100:.2f}",
        "sales": f"{before:.2f}",
    }
    return rate, description


def plan_split(
    order, *, policy=None, depth=None, bonus_bp=_LOOK_UP, distributors=None, now=None
) -> tuple[list[PlannedLine], Decimal, Decimal, str]:
    """The lines an order would pay, after caps: (lines, base, computed total, cap reason).

    ``depth`` and the product's ``bonus_bp`` (None: no active bonus) are looked up unless the
    caller already read them (``split_commissions`` reads them with the order and the policy).
    """
    from distribution.models import Distributor

    policy = policy or get_policy()
    base = commission_base(order, policy)
    chain = beneficiary_chain(order, depth or _commission_depth())
    if not chain or base <= 0:
        return [], base, ZERO, ""
    if distributors is None:
        distributors = Distributor.objects.select_related("grade").in_bulk(chain)
    rules = list(
        CommissionRule.objects.filter(
            is_active=True, level__lte=len(chain), product_id__in=[order.product_id]
        )
        | CommissionRule.objects.filter(
            is_active=True, level__lte=len(chain), product__isnull=True
        )
    )
    moment = now or order.paid_at or timezone.now()
    multipliers = [
        Decimal(c.multiplier_bp)
        for c in Campaign.objects.filter(
            is_active=True, starts_at__lte=moment, ends_at__gt=moment
        )
        if c.product_id in (None, order.product_id)
    ]
    multiplier = max(multipliers or [Decimal(BASIS_POINTS)])
    self_purchase = is_self_purchase(order) and not policy.self_purchase_earns
    lines: list[PlannedLine] = []
    for level, beneficiary_id in enumerate(chain, start=1):
        distributor = distributors.get(beneficiary_id)
        if distributor is None or (level == 1 and self_purchase):
            continue
        rule = resolve_rule(
            rules,
            grade_id=distributor.grade_id,
            product_id=order.product_id,
            level=level,
        )
        tiered = None
        if level == 1 and (rule is None or rule.product_id is None):
            tiered = tiered_rate(order, distributor, policy, moment)
        if tiered is not None:
            rate, description = tiered
            raw = base * rate * multiplier / (BASIS_POINTS * BASIS_POINTS)
            rate_bp, rule = int(rate), None
        elif rule is not None and rule.mode == RuleMode.FIXED:
            raw = (
                Decimal(rule.fixed_amount) * order.quantity * multiplier / BASIS_POINTS
            )
            rate_bp, description = 0, rule.describe()
        else:
            rate_bp = (
                rule.rate_bp
                if rule is not None
                else getattr(distributor.grade, f"commission_level{level}_bp", 0)
            )
            raw = base * Decimal(rate_bp) * multiplier / (BASIS_POINTS * BASIS_POINTS)
            description = (
                rule.describe()
                if rule is not None
                else _("%(grade)s 等级第 %(level)s 级")
                % {
                    "grade": distributor.grade.name,
                    "level": level,
                }
            )
        if multiplier != BASIS_POINTS:
            description = f"{description} × {multiplier / BASIS_POINTS:g}"
        amount = to_fen(raw)
        if amount > 0:
            lines.append(
                PlannedLine(
                    beneficiary_id,
                    CommissionKind.LEVEL,
                    level,
                    rule,
                    description[:200],
                    rate_bp,
                    amount,
                )
            )
    if bonus_bp is _LOOK_UP:
        bonus = ProductBonus.objects.filter(
            product_id=order.product_id, is_active=True
        ).first()
        bonus_bp = bonus.bonus_bp if bonus is not None else None
    if bonus_bp and chain[0] in distributors and not self_purchase:
        amount = to_fen(base * bonus_bp / BASIS_POINTS)
        if amount > 0:
            lines.append(
                PlannedLine(
                    chain[0],
                    CommissionKind.BONUS,
                    1,
                    None,
                    _("商品额外奖励 %(rate)s%%")
                    % {"rate": f"{Decimal(bonus_bp) / 100:.2f}"},
                    bonus_bp,
                    amount,
                )
            )
    computed = sum((line.amount for line in lines), ZERO)
    paid = Decimal(order.paid_amount)
    order_cap = to_fen(paid * policy.max_order_share_bp / BASIS_POINTS)
    margin = max(paid - Decimal(order.cost_amount or 0), ZERO)
    payout_cap = to_fen(margin * policy.max_margin_share_bp / BASIS_POINTS)
    difference, unit_cost = _sub_store_difference(order, distributors)
    if self_purchase:
        difference = ZERO  # a distributor buying from their own store pays themselves nothing
    # The price difference comes first (it is the seller's own price, within the merchant's
    # bounds); commissions share what the merchant's cap on the margin leaves.
    difference = min(difference, payout_cap)
    margin_cap = max(payout_cap - difference, ZERO)
    cap = min(order_cap, margin_cap, base)
    reason = ""
    if computed > cap:
        reason = (
            _("单笔订单佣金上限 ¥%(cap)s") % {"cap": cap}
            if cap == order_cap
            else _("毛利分配上限 ¥%(cap)s（含分站差价）") % {"cap": cap}
        )
        for line in lines:
            line.amount = to_fen(line.amount * cap / computed)
        lines = [line for line in lines if line.amount > 0]
    if difference > 0:
        lines.append(
            PlannedLine(
                chain[0],
                CommissionKind.PRICE_DIFFERENCE,
                1,
                None,
                _("分站差价：售价 ¥%(price)s − 拿货价 ¥%(cost)s，× %(quantity)s")
                % {"price": f"{paid / order.quantity:.2f}", "cost": f"{unit_cost:.2f}", "quantity": order.quantity},
                0,
                difference,
            )
        )
    return lines, base, computed, reason


@dataclass
class _SplitContext:
    policy: CommissionPolicy
    depth: int
    already_split: bool
    bonus_bp: object  # the product's active bonus (None: none), or _LOOK_UP


def _split_context(order) -> _SplitContext:
    """Policy, distribution depth, "already split?" and the product's bonus in one query.

    Read after the order's row lock: a split that waited for another one's commit sees the
    rows it wrote (the lock statement's own snapshot predates that commit).
    """
    from distribution.models import DistributionSettings

    policy = (
        CommissionPolicy.objects.filter(pk=1)
        .annotate(
            distribution_depth=Subquery(
                DistributionSettings.objects.filter(pk=1).values("commission_depth")[:1]
            ),
            already_split=Exists(Commission.objects.filter(order_id=order.pk)),
            product_bonus_bp=Subquery(
                ProductBonus.objects.filter(
                    product_id=order.product_id, is_active=True
                ).values("bonus_bp")[:1]
            ),
        )
        .first()
    )
    if policy is None or policy.distribution_depth is None:  # first use: create the rows
        return _SplitContext(
            get_policy(),
            _commission_depth(),
            Commission.objects.filter(order_id=order.pk).exists(),
            _LOOK_UP,
        )
    return _SplitContext(
        policy,
        min(max(int(policy.distribution_depth), 1), MAX_LEVELS),
        policy.already_split,
        policy.product_bonus_bp,
    )


def _accrual_accounts(distributor_ids) -> tuple[Account, dict[int, Account]]:
    """Merchant revenue and each beneficiary's pending account (one query once they exist)."""
    ids = set(distributor_ids)
    found = list(
        Account.objects.filter(
            Q(kind=AccountKind.DISTRIBUTOR_PENDING, distributor_id__in=ids)
            | Q(kind=AccountKind.MERCHANT_REVENUE, distributor__isnull=True)
        )
    )
    revenue = next(
        (a for a in found if a.kind == AccountKind.MERCHANT_REVENUE), None
    ) or merchant_account(AccountKind.MERCHANT_REVENUE)
    pending = {
        a.distributor_id: a for a in found if a.kind == AccountKind.DISTRIBUTOR_PENDING
    }
    if len(pending) < len(ids):
        pending.update(
            accounts_of_kind(ids - set(pending), AccountKind.DISTRIBUTOR_PENDING)
        )
    return revenue, pending


def split_commissions(*, order) -> list[Commission]:
    """Write the order's commission rows and their journal entries, once; return the rows.

    Nine queries for a three-level chain whose accounts exist (pinned in
    ``tests/test_queries.py``): the order (locked), policy with depth, "already split?" and
    the product's bonus, the chain's distributors, rules, campaigns, tiers, the accounts,
    the commission rows, and one statement for the journal and the balances.
    """
    from orders.models import Order

    with transaction.atomic(
        savepoint=False
    ):  # in the caller's transaction, all or nothing
        locked = (
            Order.objects.select_for_update(of=("self",))
            .select_related("product")
            .get(pk=order.pk)
        )
        context = _split_context(locked)
        if context.already_split:
            return list(
                Commission.objects.filter(order=locked).order_by("level", "kind")
            )
        policy = context.policy
        lines, _base, computed, cap_reason = plan_split(
            locked, policy=policy, depth=context.depth, bonus_bp=context.bonus_bp
        )
        if not lines:
            return []
        delivered_at = locked.completed_at or timezone.now()
        available_at = delivered_at + timedelta(
            days=policy.hold_days_for(locked.product_type)
        )
        revenue, pending = _accrual_accounts(line.beneficiary_id for line in lines)
        commissions = Commission.objects.bulk_create(
            [
                Commission(
                    order=locked,
                    beneficiary_id=line.beneficiary_id,
                    kind=line.kind,
                    level=line.level,
                    rule=line.rule,
                    rule_description=line.description,
                    rate_bp=line.rate_bp,
                    base_amount=_base,
                    amount=line.amount,
                    available_at=available_at,
                )
                for line in lines
            ]
        )
        total = sum((c.amount for c in commissions), ZERO)
        if cap_reason:
            CapEvent.objects.create(
                order=locked,
                computed_amount=computed,
                capped_amount=total,
                reason=cap_reason[:200],
            )
        entries = [debit(revenue, total)]
        entries += [
            credit(pending[c.beneficiary_id], c.amount, commission=c)
            for c in commissions
        ]
        post_journal_transactions(
            [
                Posting(
                    kind=TransactionKind.ACCRUAL,
                    reference=f"accrual:order:{locked.pk}",
                    lines=entries,
                    memo=_("订单 %(order)s 佣金计提") % {"order": locked.order_no},
                    order_id=locked.pk,
                )
            ]
        )
    return sorted(commissions, key=lambda c: (c.level, c.kind))
