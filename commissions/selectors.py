"""Reads of the commission books. Report figures come from the journal entries themselves
(one aggregate per question, no joins that fan out)."""

from datetime import date
from decimal import Decimal

from django.db.models import Case, Count, DecimalField, F, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from kamen.money import ZERO

from .models import (
    DISTRIBUTOR_KINDS,
    Account,
    AccountKind,
    Commission,
    CommissionStatus,
    EntrySide,
    JournalEntry,
    JournalTransaction,
    PayoutAccount,
    TransactionKind,
    WalletHold,
    Withdrawal,
    WithdrawalStatus,
)

MONEY_FIELD = DecimalField(max_digits=14, decimal_places=2)


def _sum(expression, **filters):
    return Coalesce(Sum(expression, **filters), Value(ZERO), output_field=MONEY_FIELD)


def ledger_differences() -> dict:
    """Accounts whose cache differs from their entries; transactions that do not balance or
    have fewer than two entries (PostgreSQL refuses both at commit since migration 0007; this
    finds any stored before, or written where the triggers do not run)."""
    accounts = Account.objects.annotate(
        entries_total=Coalesce(
            Sum(
                Case(
                    When(entries__side=EntrySide.CREDIT, then=F("entries__amount")),
                    default=-F("entries__amount"),
                    output_field=MONEY_FIELD,
                )
            ),
            Value(ZERO),
            output_field=MONEY_FIELD,
        )
    ).order_by("pk")
    bad_accounts = [
        {
            "id": account.pk,
            "kind": account.kind,
            "distributor_id": account.distributor_id,
            "cached": account.balance,
            "entries": account.entries_total,
        }
        for account in accounts
        if account.balance != account.entries_total
    ]
    journals = (
        JournalTransaction.objects.annotate(
            debits=_sum("entries__amount", filter=Q(entries__side=EntrySide.DEBIT)),
            credits=_sum("entries__amount", filter=Q(entries__side=EntrySide.CREDIT)),
            entry_count=Count("entries"),
        )
        .filter(~Q(debits=F("credits")) | Q(entry_count__lt=2))
        .order_by("pk")
    )
    bad_journals = [
        {"id": j.pk, "reference": j.reference, "debits": j.debits, "credits": j.credits, "entries": j.entry_count}
        for j in journals
    ]
    return {
        "accounts": bad_accounts,
        "transactions": bad_journals,
        "account_count": Account.objects.count(),
        "transaction_count": JournalTransaction.objects.count(),
    }


def wallet(distributor) -> dict[str, Decimal]:
    """Pending / available / frozen, from the cached balances (one query)."""
    balances = dict(
        Account.objects.filter(
            distributor=distributor, kind__in=DISTRIBUTOR_KINDS
        ).values_list("kind", "balance")
    )
    return {
        "pending": balances.get(AccountKind.DISTRIBUTOR_PENDING, ZERO),
        "available": balances.get(AccountKind.DISTRIBUTOR_AVAILABLE, ZERO),
        "frozen": balances.get(AccountKind.DISTRIBUTOR_FROZEN, ZERO),
    }


def statement_lines(distributor):
    """The distributor's commissions, newest first: order, level, rule, rate, amount."""
    return (
        Commission.objects.filter(beneficiary=distributor)
        .select_related("order")
        .order_by("-created_at", "-id")
    )


def statement_entries(distributor):
    """Every journal entry on the distributor's accounts (what moved, when, why)."""
    return (
        JournalEntry.objects.filter(account__distributor=distributor)
        .select_related("transaction", "account", "commission")
        .order_by("-id")
    )


def withdrawals(distributor):
    return (
        Withdrawal.objects.filter(distributor=distributor)
        .select_related("payout_account")
        .order_by("-created_at", "-id")
    )


def payout_accounts(distributor):
    return PayoutAccount.objects.filter(
        distributor=distributor, is_active=True
    ).order_by("-created_at")


def monthly_tax_statements(distributor) -> list[dict]:
    """Per month: income withdrawn (labour remuneration, paid or still payable), tax withheld
    (net of adjustments), of which adjustments (the tax recomputed when a withdrawal was
    rejected or its payout failed; negative when returned), fees, net paid."""
    from django.db.models.functions import TruncMonth
    from django.utils import timezone

    counted = ~Q(status__in=[WithdrawalStatus.REJECTED, WithdrawalStatus.FAILED])
    rows = (
        Withdrawal.objects.filter(distributor=distributor)
        .annotate(
            month=TruncMonth("created_at", tzinfo=timezone.get_current_timezone())
        )
        .values("month")
        .annotate(
            income=Sum("amount", filter=counted, default=ZERO),
            tax=Sum("tax", filter=counted, default=ZERO),
            tax_adjustment=Sum("tax_adjustment", default=ZERO),
            fee=Sum("fee", filter=counted, default=ZERO),
            net=Sum("net_amount", filter=counted, default=ZERO),
        )
        .order_by("-month")
    )
    return [
        {
            "month": row["month"].date()
            if hasattr(row["month"], "date")
            else row["month"],
            "income": row["income"],
            "tax": row["tax"] + row["tax_adjustment"],
            "tax_adjustment": row["tax_adjustment"],
            "fee": row["fee"],
            "net": row["net"],
        }
        for row in rows
        if row["income"] or row["tax_adjustment"]
    ]


def commission_report() -> list[dict]:
    """Per distributor: earned, reversed (cancelled or clawed back), settled, withdrawn, from
    the journal entries on their accounts — one aggregate grouped by the account's owner, no
    join to commissions or orders that could multiply a row."""
    pending = Q(account__kind=AccountKind.DISTRIBUTOR_PENDING)
    available = Q(account__kind=AccountKind.DISTRIBUTOR_AVAILABLE)
    rows = (
        JournalEntry.objects.filter(account__distributor__isnull=False)
        .values("account__distributor_id")
        .annotate(
            earned=_sum(
                "amount",
                filter=pending
                & Q(side=EntrySide.CREDIT, transaction__kind=TransactionKind.ACCRUAL),
            ),
            reversed=_sum(
                "amount",
                filter=Q(
                    side=EntrySide.DEBIT,
                    transaction__kind__in=[
                        TransactionKind.CANCELLATION,
                        TransactionKind.CLAWBACK,
                    ],
                ),
            ),
            settled=_sum(
                "amount",
                filter=available
                & Q(
                    side=EntrySide.CREDIT, transaction__kind=TransactionKind.SETTLEMENT
                ),
            ),
            withdrawn=_sum(
                "amount",
                filter=available
                & Q(side=EntrySide.DEBIT, transaction__kind=TransactionKind.WITHDRAWAL),
            ),
        )
        .order_by("account__distributor_id")
    )
    return [
        {
            "distributor_id": row["account__distributor_id"],
            "earned": row["earned"],
            "reversed": row["reversed"],
            "net": row["earned"] - row["reversed"],
            "settled": row["settled"],
            "withdrawn": row["withdrawn"],
        }
        for row in rows
    ]


def commissions_for_export():
    """Commission rows for the CSV export, with order number and beneficiary (one join each,
    one row per commission)."""
    return Commission.objects.select_related("order", "beneficiary__user").order_by(
        "pk"
    )


def month_bounds(month: date):
    from django.utils import timezone

    start = timezone.make_aware(timezone.datetime(month.year, month.month, 1))
    end_month = date(month.year + (month.month // 12), month.month % 12 + 1, 1)
    end = timezone.make_aware(timezone.datetime(end_month.year, end_month.month, 1))
    return start, end


def preview_split(*, distributor, product, amount: Decimal, quantity: int = 1) -> dict:
    """“An order of ¥100 by a buyer under this distributor pays …”: the split the current
    rules would make, computed on an unsaved order with today's upline, nothing written."""
    from django.utils import timezone

    from distribution.selectors import upline_ids

    from .services.split import _commission_depth, _order_model, plan_split

    order = _order_model()(
        product=product,
        product_type=product.product_type,
        quantity=quantity,
        paid_amount=amount,
        cost_amount=Decimal(product.cost_price or 0) * quantity,
        distributor_id=distributor.pk,
        attribution={
            "distributor_id": distributor.pk,
            "chain": upline_ids(distributor, depth=_commission_depth() - 1),
        },
        paid_at=timezone.now(),
    )
    lines, base, computed, cap_reason = plan_split(order)
    total = sum((line.amount for line in lines), ZERO)
    return {
        "lines": lines,
        "base": base,
        "computed": computed,
        "total": total,
        "merchant_keeps": base - total,
        "cap_reason": cap_reason,
    }


def settlement_due(*, now=None) -> dict:
    """What a settlement run now would move (the run's own filter: pending, hold passed, not
    frozen): shown on the 立即结算 confirmation page."""
    held = WalletHold.objects.filter(is_active=True).values("distributor_id")
    return (
        Commission.objects.filter(status=CommissionStatus.PENDING, available_at__lte=now or timezone.now())
        .exclude(beneficiary_id__in=held)
        .aggregate(count=Count("id"), total=_sum(F("amount") - F("reversed_amount")))
    )


def _month_bounds(month):
    """(start, end) of the calendar month holding ``month`` (a date), in the current time zone."""
    from datetime import datetime, timedelta

    from django.utils import timezone

    start = timezone.make_aware(datetime(month.year, month.month, 1))
    end = timezone.make_aware(
        datetime(*((start + timedelta(days=32)).timetuple()[:2]), 1)
    )
    return start, end


def tax_certificate(*, distributor, month) -> dict | None:
    """One distributor's tax statement for one month (完税证明 style): each withdrawal that
    counts (neither rejected nor failed), the adjustments, and the totals. None: no such month."""
    start, end = _month_bounds(month)
    month_rows = Withdrawal.objects.filter(
        distributor=distributor, created_at__gte=start, created_at__lt=end
    )
    counted = ~Q(status__in=[WithdrawalStatus.REJECTED, WithdrawalStatus.FAILED])
    totals = month_rows.aggregate(
        income=Sum("amount", filter=counted, default=ZERO),
        tax=Sum("tax", filter=counted, default=ZERO),
        tax_adjustment=Sum("tax_adjustment", default=ZERO),
        fee=Sum("fee", filter=counted, default=ZERO),
        net=Sum("net_amount", filter=counted, default=ZERO),
    )
    if not totals["income"] and not totals["tax_adjustment"]:
        return None
    from riskcontrol.selectors import verified_real_name

    verification = verified_real_name(distributor=distributor)
    return {
        "month": start.date(),
        "distributor": distributor,
        "name_mask": verification.name_mask if verification else "",
        "id_number_mask": verification.id_number_mask if verification else "",
        "withdrawals": list(month_rows.filter(counted).order_by("created_at", "pk")),
        "adjusted": list(month_rows.exclude(tax_adjustment=0).order_by("created_at", "pk")),
        "income": totals["income"],
        "tax": totals["tax"] + totals["tax_adjustment"],
        "tax_adjustment": totals["tax_adjustment"],
        "fee": totals["fee"],
        "net": totals["net"],
    }


def month_withholding(*, month) -> list[dict]:
    """Per distributor, the month's labour remuneration and the tax withheld on it (net of
    adjustments): the lines of the month's withholding filing (扣缴申报)."""
    start, end = _month_bounds(month)
    counted = ~Q(status__in=[WithdrawalStatus.REJECTED, WithdrawalStatus.FAILED])
    rows = (
        Withdrawal.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("distributor_id")
        .annotate(
            income=Sum("amount", filter=counted, default=ZERO),
            tax=Sum("tax", filter=counted, default=ZERO),
            tax_adjustment=Sum("tax_adjustment", default=ZERO),
            count=Count("pk", filter=counted),
        )
        .order_by("distributor_id")
    )
    return [
        {
            "distributor_id": row["distributor_id"],
            "income": row["income"],
            "tax": row["tax"] + row["tax_adjustment"],
            "withdrawals": row["count"],
        }
        for row in rows
        if row["income"] or row["tax_adjustment"]
    ]
