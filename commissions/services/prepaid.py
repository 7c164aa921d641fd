"""A docking site's prepaid balance (预存款, docs/adr/0019), kept in the journal.

The balance is a ledger account of kind ``docking_prepaid`` owned by the site's distributor
(credits − debits, what the merchant owes the site). A top-up debits ``prepaid_receipts`` (the
money the merchant received) and credits it; an API order debits it and credits
``merchant_revenue``; a refund reverses that. The balance may fall below zero down to the site's
credit limit, never further, checked under the account's row lock so that concurrent orders
cannot overdraw it together. Each posting has its reference: the same one twice posts once.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from kamen.audit import record_audit
from kamen.four_eyes import require_another_person
from kamen.money import FEN, InvalidAmount, parse_amount

from ..models import Account, AccountKind, JournalEntry, JournalTransaction, TransactionKind
from .ledger import credit, debit, lock_account, merchant_account, post_journal_transaction


class InsufficientPrepaid(Exception):
    """The order would take the balance below minus the credit limit."""


def prepaid_account(distributor_id: int) -> Account:
    account, _created = Account.objects.get_or_create(kind=AccountKind.DOCKING_PREPAID, distributor_id=distributor_id)
    return account


def prepaid_balance(distributor_id: int) -> Decimal:
    found = (
        Account.objects.filter(kind=AccountKind.DOCKING_PREPAID, distributor_id=distributor_id)
        .values_list("balance", flat=True)
        .first()
    )
    return found if found is not None else Decimal("0.00")


def _positive(amount) -> Decimal:
    try:
        value = parse_amount(amount)
    except InvalidAmount as error:
        raise ValidationError({"amount": [str(error)]}) from None
    if value <= 0:
        raise ValidationError({"amount": [_("金额须大于 0")]})
    return value.quantize(FEN)


def top_up_prepaid(
    *, distributor_id: int, amount, reference: str, actor=None, memo: str = "", request=None
) -> JournalTransaction:
    """Staff (or a paid gateway order) add to a site's prepaid balance; once per ``reference``."""
    if actor is not None and not actor.has_perm("distribution.top_up_prepaid"):
        raise PermissionDenied("topping up a prepaid balance needs distribution.top_up_prepaid")
    value = _positive(amount)
    if not reference:
        raise ValidationError({"reference": [_("缺少充值单号")]})
    if actor is not None:
        from distribution.models import Distributor

        owner = Distributor.objects.filter(pk=distributor_id).values_list("user_id", flat=True).first()
        require_another_person(actor=actor, subject_user_ids=[owner], what=_("预存款充值"))
    with transaction.atomic():
        posted = post_journal_transaction(
            kind=TransactionKind.PREPAID_TOP_UP,
            reference=f"prepaid-top-up:{reference}",
            lines=[
                debit(merchant_account(AccountKind.PREPAID_RECEIPTS), value),
                credit(prepaid_account(distributor_id), value),
            ],
            memo=memo or _("预存款充值"),
            actor=actor,
        )
        if actor is not None:
            record_audit(
                actor=actor,
                action="docking.prepaid_top_up",
                target=posted,
                changes={"amount": [None, str(value)], "distributor": distributor_id},
                request=request,
            )
    return posted


def pay_from_prepaid(
    *, distributor_id: int, amount, credit_limit, reference: str, order_id: int | None = None
) -> JournalTransaction:
    """Pay the merchant from the prepaid balance (an API order); once per ``reference``; never
    below ``-credit_limit``, whatever runs at the same moment. Runs in the caller's transaction
    (the order's), so the order and the debit stand or fall together."""
    value = _positive(amount)
    full_reference = f"prepaid-payment:{reference}"
    with transaction.atomic(savepoint=False):
        account = lock_account(prepaid_account(distributor_id))
        existing = JournalTransaction.objects.filter(reference=full_reference).first()
        if existing is not None:
            return existing
        if account.balance - value < -Decimal(credit_limit):
            raise InsufficientPrepaid(
                _("预存款余额不足（余额 ¥%(balance)s，信用额度 ¥%(limit)s）")
                % {"balance": account.balance, "limit": credit_limit}
            )
        return post_journal_transaction(
            kind=TransactionKind.PREPAID_PAYMENT,
            reference=full_reference,
            lines=[debit(account, value), credit(merchant_account(AccountKind.MERCHANT_REVENUE), value)],
            memo=_("预存款支付 %(reference)s") % {"reference": reference},
            order=order_id,
        )


def refund_to_prepaid(
    *, distributor_id: int, amount, reference: str, order_id: int | None = None
) -> JournalTransaction:
    """Give an API order's money back to the prepaid balance; once per ``reference``."""
    value = _positive(amount)
    return post_journal_transaction(
        kind=TransactionKind.PREPAID_REFUND,
        reference=f"prepaid-refund:{reference}",
        lines=[
            debit(merchant_account(AccountKind.MERCHANT_REVENUE), value),
            credit(prepaid_account(distributor_id), value),
        ],
        memo=_("预存款退回 %(reference)s") % {"reference": reference},
        order=order_id,
    )


@dataclass(frozen=True)
class StatementLine:
    id: int
    created_at: object
    kind: str
    reference: str
    memo: str
    amount: Decimal  # + credit to the site, − debit
    order_id: int | None


def prepaid_statement(*, distributor_id: int, after_id: int = 0, limit: int = 50) -> list[StatementLine]:
    """The site's prepaid account entries, oldest first, after ``after_id`` (a cursor)."""
    entries = (
        JournalEntry.objects.filter(
            account__kind=AccountKind.DOCKING_PREPAID, account__distributor_id=distributor_id, id__gt=after_id
        )
        .select_related("transaction")
        .order_by("id")[: max(1, min(limit, 200))]
    )
    return [
        StatementLine(
            id=entry.pk,
            created_at=entry.created_at,
            kind=entry.transaction.kind,
            reference=entry.transaction.reference,
            memo=entry.transaction.memo,
            amount=entry.amount if entry.side == "credit" else -entry.amount,
            order_id=entry.transaction.order_id,
        )
        for entry in entries
    ]
