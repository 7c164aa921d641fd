"""Upline commissions on a downline's stock purchase (进货, docs/adr/0022).

The merchant's rule is ``CommissionPolicy.stock_commission_mode``: none, or on the margin.
On the margin, each upline of the buyer — their snapshot ancestors, nearest first, cut at the
commission depth (never more than 3 levels above the buyer) — earns their grade's level rate
on their own margin on the purchase: what the buyer paid minus what the same keys would cost
the upline at their own grade price and volume tier (same quantity); nothing when that is not
positive. Lines round down to the fen.

Their total never exceeds the merchant's caps, the same as an order's: the share of what was
paid (``max_order_share_bp``) and the share of the merchant's margin on the keys (paid − the
keys' cost, ``max_margin_share_bp``). Above a cap the lines are scaled down, each rounded down,
the remainder staying with the merchant, and the line's description says so.

Booked like an order's commissions: one row per (purchase, beneficiary) — the unique
constraint is the backstop — and one accrual transaction (revenue → each beneficiary's pending
balance), held for the card-key hold days, then settled with the rest. Called by the orders
app in the purchase's transaction, with plain values.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from distribution.models import Distributor
from distribution.services import commission_depth, cost_price_for
from kamen.money import ZERO, to_fen

from ..models import BASIS_POINTS, AccountKind, Commission, CommissionKind, StockCommissionMode, TransactionKind
from .ledger import credit, debit, distributor_account, merchant_account, post_journal_transaction
from .rules import get_policy

__all__ = ["StockCommissionLine", "plan_stock_commissions", "split_stock_purchase"]


@dataclass(frozen=True)
class StockCommissionLine:
    beneficiary_id: int
    level: int
    rate_bp: int
    margin: Decimal
    amount: Decimal
    description: str


def _cap(policy, *, paid: Decimal, merchant_cost: Decimal) -> Decimal:
    by_paid = to_fen(paid * policy.max_order_share_bp / BASIS_POINTS)
    by_margin = to_fen(max(paid - merchant_cost, ZERO) * policy.max_margin_share_bp / BASIS_POINTS)
    return min(by_paid, by_margin)


def plan_stock_commissions(
    *, product, quantity: int, paid: Decimal, merchant_cost: Decimal, upline: list[int]
) -> list[StockCommissionLine]:
    """The upline's lines on a purchase of ``quantity`` keys of ``product`` for ``paid``."""
    policy = get_policy()
    if policy.stock_commission_mode != StockCommissionMode.MARGIN or not upline:
        return []
    ids = list(upline)[: commission_depth()]
    members = Distributor.objects.select_related("grade").in_bulk(ids)
    planned = []
    for level, distributor_id in enumerate(ids, start=1):
        member = members.get(distributor_id)
        if member is None:
            continue
        own_cost = cost_price_for(distributor=member, product=product, quantity=quantity) * quantity
        margin = paid - own_cost
        rate = int(getattr(member.grade, f"commission_level{level}_bp"))
        amount = to_fen(margin * rate / BASIS_POINTS) if margin > 0 else ZERO
        if amount > 0:
            planned.append((member, level, rate, margin, amount))
    computed = sum((amount for *_rest, amount in planned), ZERO)
    cap = _cap(policy, paid=paid, merchant_cost=merchant_cost)
    lines = []
    for member, level, rate, margin, amount in planned:
        description = _("%(level)s 级进货佣金：差价 ¥%(margin)s × %(rate)s%%") % {
            "level": level,
            "margin": f"{margin:.2f}",
            "rate": f"{Decimal(rate) / 100:.2f}",
        }
        if computed > cap:
            amount = to_fen(amount * cap / computed)
            description += _("（按佣金上限调整）")
        if amount > 0:
            lines.append(StockCommissionLine(member.pk, level, rate, margin, amount, description[:200]))
    return lines


def split_stock_purchase(
    *,
    stock_purchase_id: int,
    purchase_no: str,
    product,
    quantity: int,
    paid: Decimal,
    merchant_cost: Decimal,
    upline: list[int],
) -> Decimal:
    """Write the upline's commission rows on the purchase and post their accrual, once; return
    their total (what the purchase's books pass from revenue to the distributors)."""
    with transaction.atomic():
        existing = list(Commission.objects.filter(stock_purchase_id=stock_purchase_id, kind=CommissionKind.STOCK))
        if existing:
            return sum((row.amount for row in existing), ZERO)
        lines = plan_stock_commissions(
            product=product, quantity=quantity, paid=paid, merchant_cost=merchant_cost, upline=upline
        )
        if not lines:
            return ZERO
        available_at = timezone.now() + timedelta(days=get_policy().hold_days_for(product.product_type))
        rows = Commission.objects.bulk_create(
            [
                Commission(
                    order=None,
                    stock_purchase_id=stock_purchase_id,
                    beneficiary_id=line.beneficiary_id,
                    kind=CommissionKind.STOCK,
                    level=line.level,
                    rule_description=line.description,
                    rate_bp=line.rate_bp,
                    base_amount=line.margin,
                    amount=line.amount,
                    available_at=available_at,
                )
                for line in lines
            ]
        )
        total = sum((line.amount for line in lines), ZERO)
        revenue = merchant_account(AccountKind.MERCHANT_REVENUE)
        post_journal_transaction(
            kind=TransactionKind.ACCRUAL,
            reference=f"stock-commission:{purchase_no}",
            lines=[debit(revenue, total)]
            + [
                credit(
                    distributor_account(row.beneficiary_id, AccountKind.DISTRIBUTOR_PENDING), row.amount, commission=row
                )
                for row in rows
            ],
            memo=_("进货 %(purchase)s 上级佣金") % {"purchase": purchase_no},
        )
        return total
