"""Reads of the order books (docs/adr/0020): one order's lines and profit, and profit summed
from the ledger by product, by day and by distributor. Product and distributor come from the
journal's order (the caller names the order's fields it groups by: this app never imports
``orders``)."""

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Case, DecimalField, F, Sum, When
from django.db.models.functions import TruncDate

from kamen.money import ZERO

from .models import AccountKind, Commission, CommissionKind, EntrySide, JournalEntry, TransactionKind

K = AccountKind


@dataclass(frozen=True)
class BookLine:
    transaction_id: int
    kind: str  # the journal transaction's kind
    kind_label: str
    account_kind: str
    account_label: str
    distributor_id: int | None
    side: str
    amount: Decimal
    memo: str
    created_at: object

    @property
    def signed(self) -> Decimal:
        return self.amount if self.side == EntrySide.CREDIT else -self.amount


@dataclass(frozen=True)
class CommissionShare:
    level: int
    beneficiary_id: int
    kind: str
    description: str
    amount: Decimal  # what is left of it after reversals


@dataclass
class OrderBooks:
    paid: Decimal = ZERO
    refunded: Decimal = ZERO
    fee: Decimal = ZERO
    cost: Decimal = ZERO
    profit: Decimal = ZERO
    price_differences: Decimal = ZERO
    commissions: list[CommissionShare] = field(default_factory=list)
    lines: list[BookLine] = field(default_factory=list)
    is_closed: bool = False  # cost and profit booked (delivered, or fully refunded)

    @property
    def commission_total(self) -> Decimal:
        return sum((share.amount for share in self.commissions), ZERO)

    @property
    def net_paid(self) -> Decimal:
        return self.paid - self.refunded


def order_books(*, order_id: int) -> OrderBooks:
    """Every journal line of one order, and what they add up to (two queries)."""
    entries = (
        JournalEntry.objects.filter(transaction__order_id=order_id)
        .select_related("transaction", "account")
        .order_by("transaction__created_at", "transaction_id", "id")
    )
    books = OrderBooks()
    by_commission: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for entry in entries:
        journal, account = entry.transaction, entry.account
        line = BookLine(
            transaction_id=journal.pk,
            kind=journal.kind,
            kind_label=journal.get_kind_display(),
            account_kind=account.kind,
            account_label=account.get_kind_display(),
            distributor_id=account.distributor_id,
            side=entry.side,
            amount=entry.amount,
            memo=journal.memo,
            created_at=journal.created_at,
        )
        books.lines.append(line)
        if account.distributor_id is not None:
            if entry.commission_id is not None:
                by_commission[entry.commission_id] += line.signed
            continue
        if account.kind == K.GATEWAY_CLEARING:
            if journal.kind == TransactionKind.ORDER_PAYMENT:
                books.paid -= line.signed
            else:
                books.refunded += line.signed
        elif account.kind == K.GATEWAY_FEES:
            books.fee += line.signed
        elif account.kind == K.SUPPLIER_COST:
            books.cost += line.signed
        elif account.kind == K.MERCHANT_PROFIT:
            books.profit += line.signed
        if journal.kind == TransactionKind.ORDER_DELIVERY:
            books.is_closed = True
    for commission in Commission.objects.filter(pk__in=by_commission).order_by("level", "kind"):
        amount = by_commission[commission.pk]
        if commission.kind == CommissionKind.PRICE_DIFFERENCE:
            books.price_differences += amount
        else:
            books.commissions.append(
                CommissionShare(
                    commission.level, commission.beneficiary_id, commission.kind, commission.rule_description, amount
                )
            )
    return books


_SIGNED = Case(
    When(side=EntrySide.CREDIT, then=F("amount")),
    default=-F("amount"),
    output_field=DecimalField(max_digits=14, decimal_places=2),
)


def profit_report(*, group_by: str, since=None, until=None, order_field: str = "") -> list[dict]:
    """The merchant's profit, fee and cost summed from the ledger's order lines, grouped by
    ``day`` (the posting's local date) or by a field of the journal's order (``order_field``:
    e.g. ``product_id``, ``distributor_id``). Rows: key, profit, fee, cost, orders."""
    entries = JournalEntry.objects.filter(
        account__distributor__isnull=True,
        account__kind__in=[K.MERCHANT_PROFIT, K.GATEWAY_FEES, K.SUPPLIER_COST],
        transaction__order__isnull=False,
    )
    if since is not None:
        entries = entries.filter(transaction__created_at__gte=since)
    if until is not None:
        entries = entries.filter(transaction__created_at__lt=until)
    if group_by == "day":
        key = TruncDate("transaction__created_at")
    elif group_by == "order":
        key = F(f"transaction__order__{order_field}")
    else:
        raise ValueError(f"unknown grouping {group_by!r}")
    rows = entries.annotate(key=key).values("key", "account__kind").annotate(total=Sum(_SIGNED)).order_by("key")
    report: dict = {}
    for row in rows:
        line = report.setdefault(row["key"], {"key": row["key"], "profit": ZERO, "fee": ZERO, "cost": ZERO})
        name = {K.MERCHANT_PROFIT: "profit", K.GATEWAY_FEES: "fee", K.SUPPLIER_COST: "cost"}[row["account__kind"]]
        line[name] += row["total"] or ZERO
    return sorted(report.values(), key=lambda line: line["profit"], reverse=group_by != "day")
