"""Stock purchase (进货): a distributor buys card keys at their grade price and volume tier,
paid from their available balance or through the payment gateway, the keys delivered into their
portal to resell off-platform.

From the wallet, one transaction, in this order: the purchase row (its token unique: a double
submit finds the first), the wallet debit (``pay_from_wallet`` locks the available account: a
payment, a withdrawal and a purchase of the same balance queue on it and never overdraw it),
then the delivery. Any failure rolls all of it back.

Through the gateway: ``start_stock_purchase_payment`` records a pending purchase at today's
price and sends the distributor to the cashier; the verified notification (``gateway_payables``:
stored under the provider's event id, the purchase row locked, amount checked) delivers it once,
a replayed or second notification finds it completed. If the stock ran out meanwhile, the
payment is credited to the distributor's available balance instead (a top-up), nothing lost.

The delivery: the keys claimed (``claim_card_keys``: ``SKIP LOCKED``, all or nothing, marked
sold to the purchase number, so never delivered to an order) and linked one-to-one to the
purchase; the upline's commissions under the merchant's rule (``split_stock_purchase``: none,
or on each upline's margin, within the caps, at most 3 levels); the purchase's books — payment,
fee, the keys' batch cost, commissions, profit — balanced (``book_stock_purchase``).
"""

import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from catalog import selectors as catalog_selectors
from catalog.models import CardKey, CardKeyBatch, ProductType
from catalog.services import InsufficientStock, claim_card_keys
from commissions.services import books, credit_wallet_top_up, pay_from_wallet, split_stock_purchase
from distribution.models import Distributor, DistributorStatus
from distribution.services import cost_price_for
from kamen import crypto
from kamen.parsing import InvalidNumber, parse_integer
from orders.gateways.configured import fee_schedule
from orders.models import StockPurchase, StockPurchaseKey, StockPurchaseStatus

from .gateway_payables import Payable, apply_payable_notification, start_gateway_payment

__all__ = [
    "STOCK_PURCHASE_MAX_QUANTITY",
    "STOCK_PURCHASE_PAYABLE",
    "apply_stock_purchase_notification",
    "start_stock_purchase_payment",
    "new_stock_purchase_token",
    "purchase_stock",
    "quote_stock_purchase",
    "revealed_stock_keys",
    "stock_offers",
]

STOCK_PURCHASE_MAX_QUANTITY = 1000
FEN = Decimal("0.01")


def new_stock_purchase_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class StockQuote:
    unit_price: Decimal
    total_amount: Decimal
    counted_quantity: int  # what the volume tier counted: this purchase (+ the month's, if set)


def _quantity(raw) -> int:
    try:
        quantity = parse_integer(raw)
    except (InvalidNumber, TypeError, ValueError):
        raise ValidationError({"quantity": [_("进货数量必须是整数")]}) from None
    if not 1 <= quantity <= STOCK_PURCHASE_MAX_QUANTITY:
        raise ValidationError({"quantity": [_("进货数量须在 1–%(max)s 之间") % {"max": STOCK_PURCHASE_MAX_QUANTITY}]})
    return quantity


def _buyer(distributor_id: int) -> Distributor:
    distributor = Distributor.objects.select_related("grade").filter(pk=distributor_id).first()
    if distributor is None or distributor.status != DistributorStatus.ACTIVE:
        raise ValidationError(_("只有正常状态的分销商可以进货"))
    if not distributor.grade.may_buy_stock:
        raise ValidationError(_("您的等级“%(grade)s”不能进货") % {"grade": distributor.grade.name})
    return distributor


def _month_quantity(distributor: Distributor, product) -> int:
    start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    total = StockPurchase.objects.filter(
        distributor=distributor, product=product, status=StockPurchaseStatus.COMPLETED, created_at__gte=start
    ).aggregate(total=Sum("quantity"))["total"]
    return int(total or 0)


def quote_stock_purchase(*, distributor: Distributor, product, quantity: int) -> StockQuote:
    counted = quantity
    if distributor.grade.stock_tiers_count_month:
        counted += _month_quantity(distributor, product)
    unit = cost_price_for(distributor=distributor, product=product, quantity=counted)
    return StockQuote(unit, (unit * quantity).quantize(FEN), counted)


def stock_offers(*, distributor: Distributor) -> list[dict]:
    """The card-key products on the shelf with the distributor's unit price for one key."""
    return [
        {
            "product": product,
            "unit_price": quote_stock_purchase(distributor=distributor, product=product, quantity=1).unit_price,
        }
        for product in catalog_selectors.products_on_shelf()
        if product.product_type == ProductType.CARD_KEY
    ]


STOCK_PURCHASE_PREFIX = "S"


def _purchase_no() -> str:
    return f"{STOCK_PURCHASE_PREFIX}{timezone.now():%Y%m%d%H%M%S}{secrets.randbelow(10**6):06d}"


def _upline(distributor: Distributor) -> list[int]:
    """The buyer's ancestors by the parent link (the tree's source of truth), nearest first, at
    most 3 (the legal depth)."""
    upline, parent_id = [], distributor.parent_id
    while parent_id is not None and len(upline) < 3:
        upline.append(parent_id)
        parent_id = Distributor.objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
    return upline


def _keys_cost(product, keys) -> Decimal:
    """The keys' batch cost (the product's cost price for a key whose batch has none)."""
    batches = CardKeyBatch.objects.filter(pk__in={key.batch_id for key in keys})
    unit_costs = {pk: cost for pk, cost in batches.values_list("pk", "unit_cost") if cost is not None}
    return sum((unit_costs.get(key.batch_id, product.cost_price) for key in keys), Decimal("0.00"))


def _deliver(purchase: StockPurchase, *, gateway_code: str) -> None:
    """Claim the keys, link them, split the upline's commissions and book the purchase, in the
    caller's transaction; too few keys raise ``InsufficientStock`` having changed nothing."""
    product = purchase.product
    keys = claim_card_keys(product=product, quantity=purchase.quantity, reference=purchase.purchase_no)
    StockPurchaseKey.objects.bulk_create([StockPurchaseKey(purchase=purchase, card_key_id=key.pk) for key in keys])
    cost = _keys_cost(product, keys)
    commissions = split_stock_purchase(
        stock_purchase_id=purchase.pk,
        purchase_no=purchase.purchase_no,
        product=product,
        quantity=purchase.quantity,
        paid=purchase.total_amount,
        merchant_cost=cost,
        upline=list(purchase.upline or []),
    )
    through_gateway = gateway_code != "wallet"
    books.book_stock_purchase(
        purchase_no=purchase.purchase_no,
        amount=purchase.total_amount,
        fee=fee_schedule(gateway_code).fee(purchase.total_amount) if through_gateway else Decimal("0.00"),
        cost=cost,
        commissions=commissions,
        through_gateway=through_gateway,
    )


def _validated(*, distributor_id: int, product, quantity) -> tuple[Distributor, int]:
    quantity = _quantity(quantity)
    distributor = _buyer(distributor_id)
    if product is None or product.product_type != ProductType.CARD_KEY or not product.is_on_shelf:
        raise ValidationError({"product": [_("该商品不能进货")]})
    return distributor, quantity


def _short(short: InsufficientStock) -> ValidationError:
    return ValidationError({"quantity": [_("库存不足：仅剩 %(available)s 张") % {"available": short.available}]})


def purchase_stock(*, distributor_id: int, product, quantity, token: str) -> StockPurchase:
    """Buy ``quantity`` card keys of ``product`` for the distributor from their balance.

    Bad input (quantity not 1–1000, a grade not allowed to buy stock, a product that is no
    card key, a balance or a stock too short) raises ``ValidationError`` and changes nothing.
    """
    if not token:
        raise ValidationError(_("表单已过期，请刷新后重试"))
    existing = StockPurchase.objects.filter(request_token=token[:64]).first()
    if existing is not None:
        return existing
    distributor, quantity = _validated(distributor_id=distributor_id, product=product, quantity=quantity)
    try:
        with transaction.atomic():
            quote = quote_stock_purchase(distributor=distributor, product=product, quantity=quantity)
            purchase = StockPurchase.objects.create(
                purchase_no=_purchase_no(),
                distributor=distributor,
                product=product,
                product_name=product.name[:120],
                quantity=quantity,
                unit_price=quote.unit_price,
                total_amount=quote.total_amount,
                request_token=token[:64],
                journal_reference="",
                status=StockPurchaseStatus.COMPLETED,
                payment_method="wallet",
                upline=_upline(distributor),
                paid_at=timezone.now(),
            )
            journal = pay_from_wallet(
                distributor=distributor, amount=quote.total_amount, reference=f"stock:{purchase.purchase_no}"
            )
            try:
                _deliver(purchase, gateway_code="wallet")
            except InsufficientStock as short:
                raise _short(short) from None
            StockPurchase.objects.filter(pk=purchase.pk).update(journal_reference=journal.reference)
            purchase.journal_reference = journal.reference
            return purchase
    except IntegrityError:
        existing = StockPurchase.objects.filter(request_token=token[:64]).first()
        if existing is not None:
            return existing
        raise


def start_stock_purchase_payment(
    *, distributor_id: int, product, quantity, token: str, notify_url: str, return_url: str = "", gateway_code: str
):
    """(the pending purchase, the gateway's start: where to send the distributor) for a
    purchase paid through the gateway at today's price; a double submit finds the first
    purchase (and no start). Bad input, a grade not allowed to buy stock or too few keys on the
    shelf now: ``ValidationError``, nothing recorded."""
    if not token:
        raise ValidationError(_("表单已过期，请刷新后重试"))
    existing = StockPurchase.objects.filter(request_token=token[:64]).first()
    if existing is not None:
        return existing, None
    distributor, quantity = _validated(distributor_id=distributor_id, product=product, quantity=quantity)
    on_shelf = catalog_selectors.available_key_count(product_id=product.pk)
    if on_shelf < quantity:
        raise _short(InsufficientStock(product, quantity, on_shelf))
    quote = quote_stock_purchase(distributor=distributor, product=product, quantity=quantity)
    try:
        with transaction.atomic():
            purchase = StockPurchase.objects.create(
                purchase_no=_purchase_no(),
                distributor=distributor,
                product=product,
                product_name=product.name[:120],
                quantity=quantity,
                unit_price=quote.unit_price,
                total_amount=quote.total_amount,
                request_token=token[:64],
                journal_reference="",
                status=StockPurchaseStatus.PENDING,
                payment_method=gateway_code,
                upline=_upline(distributor),
            )
    except IntegrityError:
        return StockPurchase.objects.get(request_token=token[:64]), None
    start = start_gateway_payment(
        number=purchase.purchase_no,
        amount=purchase.total_amount,
        subject=_("进货：%(product)s × %(quantity)s") % {"product": purchase.product_name, "quantity": quantity},
        notify_url=notify_url,
        return_url=return_url,
        gateway_code=gateway_code,
    )
    return purchase, start


def _settle(purchase: StockPurchase, gateway_code: str) -> None:
    """The verified payment of a pending purchase, under its row lock: deliver it; if the keys
    ran out since it was placed, credit the payment to the buyer's balance instead."""
    now = timezone.now()
    try:
        with transaction.atomic():
            _deliver(purchase, gateway_code=gateway_code)
            StockPurchase.objects.filter(pk=purchase.pk).update(
                status=StockPurchaseStatus.COMPLETED,
                paid_at=now,
                journal_reference=books.stock_purchase_reference(purchase.purchase_no),
            )
    except InsufficientStock:
        journal = credit_wallet_top_up(
            distributor_id=purchase.distributor_id,
            amount=purchase.total_amount,
            reference=purchase.purchase_no,
            fee=fee_schedule(gateway_code).fee(purchase.total_amount),
        )
        StockPurchase.objects.filter(pk=purchase.pk).update(
            status=StockPurchaseStatus.CREDITED_TO_BALANCE, paid_at=now, journal_reference=journal.reference
        )


STOCK_PURCHASE_PAYABLE = Payable(
    prefix=STOCK_PURCHASE_PREFIX,
    lock=lambda number: (
        StockPurchase.objects.select_for_update().select_related("product").filter(purchase_no=number).first()
    ),
    amount_of=lambda purchase: purchase.total_amount,
    is_settled=lambda purchase: purchase.status != StockPurchaseStatus.PENDING,
    settle=_settle,
    missing=gettext_lazy("进货单不存在"),
)


def apply_stock_purchase_notification(**arguments):
    """A verified notification for a stock purchase: deliver it once. Returns the callback."""
    return apply_payable_notification(payable=STOCK_PURCHASE_PAYABLE, **arguments)


def revealed_stock_keys(*, distributor_id: int, purchase: StockPurchase) -> list[dict]:
    """The purchase's keys in clear, for its buyer only (anyone else: ``PermissionError``)."""
    if purchase.distributor_id != distributor_id:
        raise PermissionError("not the buyer of this stock purchase")
    keys = CardKey.objects.filter(pk__in=purchase.keys.values("card_key_id")).order_by("pk")
    return [
        {
            "card_no": key.card_no,
            "secret": crypto.decrypt(key_id=key.key_id, blob=bytes(key.secret_ciphertext)),
        }
        for key in keys
    ]
