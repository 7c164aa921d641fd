"""Reconciliation against the gateways (对账, docs/adr/0020): each day's statement, matched line
by line against the payments and refunds Kamen recorded and the fees its books hold.

What finance sees, per gateway and day (``GatewayStatement`` and its ``StatementDifference``
rows): a payment or refund the gateway reports that Kamen does not know (missing in the books),
one Kamen recorded that the statement lacks (missing at the gateway), an amount that differs,
a fee that differs from the one booked. Beat runs ``reconcile_yesterday`` each morning; a day
with any difference writes an audit entry, e-mails the merchant's alert addresses and the
finance staff, and shows as a banner on the reconciliation page.

The statement is parsed in full before anything is read or written: a file in the wrong format
is refused with the reason and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from commissions.models import AccountKind, JournalEntry, TransactionKind
from commissions.services.books import payment_reference, refund_reference
from kamen.audit import record_audit
from orders.gateways import GatewayError, available_gateways
from orders.gateways.statements import StatementFormatError, StatementLine, parse_statement
from orders.models import (
    DifferenceKind,
    GatewayStatement,
    Order,
    Refund,
    RefundStatus,
    StatementDifference,
    StatementStatus,
    StockPurchase,
    StockPurchaseStatus,
    TopUp,
    TopUpStatus,
)

__all__ = [
    "BookPayment",
    "BookRefund",
    "Difference",
    "StatementFormatError",
    "match_statement",
    "reconcile_statement",
    "reconcile_yesterday",
]

logger = logging.getLogger(__name__)
ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class BookPayment:
    out_trade_no: str
    amount: Decimal
    fee: Decimal


@dataclass(frozen=True, slots=True)
class BookRefund:
    out_refund_no: str
    out_trade_no: str
    amount: Decimal
    fee_returned: Decimal


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    is_refund: bool
    out_trade_no: str
    out_refund_no: str = ""
    gateway_trade_no: str = ""
    statement_amount: Decimal | None = None
    book_amount: Decimal | None = None
    statement_fee: Decimal | None = None
    book_fee: Decimal | None = None


def match_statement(
    lines: list[StatementLine], payments: dict[str, BookPayment], refunds: dict[str, BookRefund]
) -> tuple[int, list[Difference]]:
    """(lines that match, the differences): every statement line against the book record of
    the same number (payments by order number, refunds by refund number), then every book
    record the statement did not name. Pure: no database."""
    differences: list[Difference] = []
    matched = 0
    seen_payments: set[str] = set()
    seen_refunds: set[str] = set()
    append = differences.append
    for line in lines:
        # A number the statement names twice is money moved twice: the second has no record.
        if line.is_refund:
            book = refunds.get(line.out_refund_no) if line.out_refund_no not in seen_refunds else None
            seen_refunds.add(line.out_refund_no)
            book_amount = book.amount if book else None
            book_fee = book.fee_returned if book else None
        else:
            book = payments.get(line.out_trade_no) if line.out_trade_no not in seen_payments else None
            seen_payments.add(line.out_trade_no)
            book_amount = book.amount if book else None
            book_fee = book.fee if book else None
        if book is None:
            append(Difference(DifferenceKind.MISSING_IN_BOOKS, line.is_refund, line.out_trade_no, line.out_refund_no,
                              line.gateway_trade_no, line.amount, None, line.fee, None))  # fmt: skip
        elif book_amount != line.amount:
            append(Difference(DifferenceKind.AMOUNT, line.is_refund, line.out_trade_no, line.out_refund_no,
                              line.gateway_trade_no, line.amount, book_amount, line.fee, book_fee))  # fmt: skip
        elif book_fee != line.fee:
            append(Difference(DifferenceKind.FEE, line.is_refund, line.out_trade_no, line.out_refund_no,
                              line.gateway_trade_no, line.amount, book_amount, line.fee, book_fee))  # fmt: skip
        else:
            matched += 1
    for out_trade_no, book in payments.items():
        if out_trade_no not in seen_payments:
            append(
                Difference(
                    DifferenceKind.MISSING_AT_GATEWAY, False, out_trade_no, "", "", None, book.amount, None, book.fee
                )
            )
    for out_refund_no, book in refunds.items():
        if out_refund_no not in seen_refunds:
            append(Difference(DifferenceKind.MISSING_AT_GATEWAY, True, book.out_trade_no, out_refund_no, "", None,
                              book.amount, None, book.fee_returned))  # fmt: skip
    return matched, differences


# --- the book side of a day ------------------------------------------------------------------------
def parse_day(text: str) -> tuple[dt.datetime, dt.datetime] | None:
    """A ``YYYY-MM-DD`` day from a form or query string as its local bounds; None if empty or
    not a date."""
    try:
        return _day_bounds(dt.date.fromisoformat((text or "").strip()))
    except ValueError:
        return None


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    return start, start + dt.timedelta(days=1)


def book_records(
    *, gateway_code: str, day: dt.date, lines: list[StatementLine] = ()
) -> tuple[dict[str, BookPayment], dict[str, BookRefund]]:
    """The payments and refunds Kamen recorded at ``gateway_code`` on ``day`` (local time), with
    the fees its books hold; and those the statement names from another day (a payment a
    second before midnight), so they are compared rather than reported missing."""
    start, end = _day_bounds(day)
    named_orders = {line.out_trade_no for line in lines if not line.is_refund}
    named_refunds = {line.out_refund_no for line in lines if line.is_refund}
    orders = {
        order_no: (pk, paid)
        for pk, order_no, paid in Order.objects.filter(
            payment_gateway=gateway_code, paid_at__gte=start, paid_at__lt=end
        )
        .values_list("pk", "order_no", "paid_amount")
        .iterator(chunk_size=5000)
    }
    missing = named_orders - orders.keys()
    if missing:
        for pk, order_no, paid in Order.objects.filter(
            payment_gateway=gateway_code, order_no__in=missing, paid_at__isnull=False
        ).values_list("pk", "order_no", "paid_amount"):
            orders[order_no] = (pk, paid)
    refund_rows = list(
        Refund.objects.filter(gateway=gateway_code, status=RefundStatus.SUCCEEDED)
        .filter(_in_day_or_named(start, end, named_refunds))
        .values_list("out_refund_no", "order_id", "order__order_no", "amount")
    )
    fees = _booked_fees(
        payment_references=[payment_reference(pk) for pk, _paid in orders.values()],
        refund_orders={order_id for _no, order_id, _order_no, _amount in refund_rows},
    )
    payments = {
        order_no: BookPayment(order_no, paid, fees.get(payment_reference(pk), ZERO))
        for order_no, (pk, paid) in orders.items()
    }
    payments.update(_payables_paid(gateway_code=gateway_code, start=start, end=end, named=named_orders))
    refunds = {}
    through = _refunded_totals({order_id for _no, order_id, _order_no, _amount in refund_rows})
    for out_refund_no, order_id, order_no, amount in refund_rows:
        cumulative = through[out_refund_no]
        returned = -fees.get(refund_reference(order_id, cumulative), ZERO)
        refunds[out_refund_no] = BookRefund(out_refund_no, order_no, amount, max(returned, ZERO))
    return payments, refunds


def _payables_paid(*, gateway_code: str, start, end, named: set[str]) -> dict[str, BookPayment]:
    """What else than orders was paid at the gateway that day (or is named by the statement):
    prepaid top-ups (``T…``) and stock purchases (``S…``), with the fee their books hold —
    the top-up's posting, the purchase's books, or the top-up a purchase became when its stock
    ran out."""
    paid = dict(
        TopUp.objects.filter(gateway=gateway_code, status=TopUpStatus.CREDITED)
        .filter(Q(credited_at__gte=start, credited_at__lt=end) | Q(top_up_no__in=named))
        .values_list("top_up_no", "amount")
    )
    paid.update(
        StockPurchase.objects.filter(payment_method=gateway_code, paid_at__isnull=False)
        .exclude(status=StockPurchaseStatus.PENDING)
        .filter(Q(paid_at__gte=start, paid_at__lt=end) | Q(purchase_no__in=named))
        .values_list("purchase_no", "total_amount")
    )
    if not paid:
        return {}
    references = {f"topup:{number}": number for number in paid} | {f"books:stock:{number}": number for number in paid}
    fees: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for reference, side, amount in JournalEntry.objects.filter(
        account__kind=AccountKind.GATEWAY_FEES,
        account__distributor__isnull=True,
        transaction__reference__in=list(references),
    ).values_list("transaction__reference", "side", "amount"):
        fees[references[reference]] += amount if side == "credit" else -amount
    return {number: BookPayment(number, amount, fees[number]) for number, amount in paid.items()}


def _in_day_or_named(start, end, named_refunds):
    from django.db.models import Q

    return Q(finished_at__gte=start, finished_at__lt=end) | Q(out_refund_no__in=named_refunds)


def _refunded_totals(order_ids: set[int]) -> dict[str, Decimal]:
    """Each succeeded refund of these orders: the order's refunded total once it succeeded (the
    reference of the books it moved), by refund number. One query."""
    totals: dict[int, Decimal] = defaultdict(lambda: ZERO)
    through = {}
    for number, order_id, amount in (
        Refund.objects.filter(order_id__in=order_ids, status=RefundStatus.SUCCEEDED)
        .order_by("order_id", "finished_at", "id")
        .values_list("out_refund_no", "order_id", "amount")
    ):
        totals[order_id] += amount
        through[number] = totals[order_id]
    return through


def _booked_fees(*, payment_references: list[str], refund_orders: set[int]) -> dict[str, Decimal]:
    """The gateway fee lines of the given payment postings and of the refund postings of the
    given orders, signed (a fee charged positive, one returned negative), by reference."""
    fees: dict[str, Decimal] = defaultdict(lambda: ZERO)
    entries = JournalEntry.objects.filter(account__kind=AccountKind.GATEWAY_FEES, account__distributor__isnull=True)
    for start in range(0, len(payment_references), 5000):
        chunk = payment_references[start : start + 5000]
        for reference, side, amount in entries.filter(
            transaction__kind=TransactionKind.ORDER_PAYMENT, transaction__reference__in=chunk
        ).values_list("transaction__reference", "side", "amount"):
            fees[reference] += amount if side == "credit" else -amount
    if refund_orders:
        for reference, side, amount in entries.filter(
            transaction__kind=TransactionKind.ORDER_REFUND, transaction__order_id__in=refund_orders
        ).values_list("transaction__reference", "side", "amount"):
            fees[reference] += amount if side == "credit" else -amount
    return fees


# --- a day's reconciliation ------------------------------------------------------------------------
def reconcile_statement(
    *, gateway_code: str, day: dt.date, content: bytes, statement_format: str, actor=None
) -> GatewayStatement:
    """Match one statement file and store the result for finance (replacing an earlier run of
    the same gateway and day). A file in the wrong format raises ``StatementFormatError`` and
    changes nothing."""
    lines = parse_statement(content, statement_format=statement_format)
    payments, refunds = book_records(gateway_code=gateway_code, day=day, lines=lines)
    matched, differences = match_statement(lines, payments, refunds)
    with transaction.atomic():
        statement, _created = GatewayStatement.objects.update_or_create(
            gateway=gateway_code,
            bill_date=day,
            defaults={
                "status": StatementStatus.DIFFERENCES if differences else StatementStatus.MATCHED,
                "line_count": len(lines),
                "matched_count": matched,
                "difference_count": len(differences),
                "statement_total": sum((line.amount for line in lines if not line.is_refund), ZERO),
                "statement_fees": sum((line.fee for line in lines if not line.is_refund), ZERO),
                "reconciled_at": timezone.now(),
            },
        )
        statement.differences.all().delete()
        StatementDifference.objects.bulk_create(
            [
                StatementDifference(
                    statement=statement,
                    kind=difference.kind,
                    is_refund=difference.is_refund,
                    out_trade_no=difference.out_trade_no[:64],
                    out_refund_no=difference.out_refund_no[:64],
                    gateway_trade_no=difference.gateway_trade_no[:64],
                    statement_amount=difference.statement_amount,
                    book_amount=difference.book_amount,
                    statement_fee=difference.statement_fee,
                    book_fee=difference.book_fee,
                )
                for difference in differences
            ],
            batch_size=5000,
        )
        if differences:
            record_audit(
                actor=actor,
                action="orders.statement_differences",
                target=statement,
                changes={"differences": len(differences), "lines": len(lines)},
            )
            transaction.on_commit(lambda: _email_finance(statement))
    logger.info(
        "reconciliation.done",
        extra={"gateway": gateway_code, "day": day.isoformat(), "lines": len(lines), "differences": len(differences)},
    )
    return statement


def _email_finance(statement: GatewayStatement) -> None:
    from django.contrib.auth import get_user_model
    from django.core.mail import send_mail

    from kamen.roles import FINANCE, OWNER

    recipients = set(settings.MERCHANT_ALERT_EMAILS) | set(
        get_user_model()
        .objects.filter(is_active=True, is_staff=True, groups__name__in=[OWNER, FINANCE])
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if not recipients:
        return
    try:
        send_mail(
            subject=_("[Kamen] 对账差异：%(gateway)s %(day)s 有 %(count)s 处不符")
            % {"gateway": statement.gateway, "day": statement.bill_date, "count": statement.difference_count},
            message=_(
                "%(gateway)s %(day)s 的账单共 %(lines)s 行，%(count)s 处与系统记录不符。请在后台“渠道对账”页面查看。"
            )
            % {
                "gateway": statement.gateway,
                "day": statement.bill_date,
                "lines": statement.line_count,
                "count": statement.difference_count,
            },
            from_email=None,
            recipient_list=sorted(recipients),
        )
    except Exception:
        logger.warning("reconciliation.email_failed", extra={"statement": statement.pk}, exc_info=True)


def reconcile_yesterday(*, now=None) -> list[GatewayStatement]:
    """Beat's morning job: download yesterday's statement of every gateway that offers one and
    reconcile it. A gateway that cannot be reached, or sends a file in the wrong format, is
    logged and written to the audit log (finance sees it); the others go on."""
    day = timezone.localdate(now or timezone.now()) - dt.timedelta(days=1)
    done = []
    for code, gateway in available_gateways().items():
        download = getattr(gateway, "download_statement", None)
        if download is None:
            continue
        try:
            statement_format, content = download(day=day)
            done.append(
                reconcile_statement(gateway_code=code, day=day, content=content, statement_format=statement_format)
            )
        except (GatewayError, StatementFormatError) as error:
            logger.warning(
                "reconciliation.failed", extra={"gateway": code, "day": day.isoformat(), "error": str(error)}
            )
            record_audit(
                actor=None,
                action="orders.statement_failed",
                target_repr=f"{code} {day.isoformat()}",
                changes={"error": str(error)[:300]},
            )
    return done
