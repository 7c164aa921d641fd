"""Stock purchase (进货): a distributor buys card keys at their grade price and volume tier,
paid from their available balance, the keys delivered into their portal.

One transaction, in this order: the purchase row (its token unique: a double submit finds the
first), the wallet debit (``pay_from_wallet`` locks the available account: a payment, a
withdrawal and a purchase of the same balance queue on it and never overdraw it), the keys
claimed (``claim_card_keys``: ``SKIP LOCKED``, all or nothing, marked sold to the purchase
number) and linked one-to-one to the purchase. Any failure rolls all of it back.

Upline commissions on purchases: none (the merchant's "none" rule); on-the-margin commissions
on purchases are not built yet.
"""

import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog import selectors as catalog_selectors
from catalog.models import CardKey, ProductType
from catalog.services import InsufficientStock, claim_card_keys
from commissions.services import pay_from_wallet
from distribution.models import Distributor, DistributorStatus
from distribution.services import cost_price_for
from kamen import crypto
from kamen.parsing import InvalidNumber, parse_integer
from orders.models import StockPurchase, StockPurchaseKey

__all__ = [
    "STOCK_PURCHASE_MAX_QUANTITY",
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
    total = StockPurchase.objects.filter(distributor=distributor, product=product, created_at__gte=start).aggregate(
        total=Sum("quantity")
    )["total"]
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


def _purchase_no() -> str:
    return f"S{timezone.now():%Y%m%d%H%M%S}{secrets.randbelow(10**6):06d}"


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
    quantity = _quantity(quantity)
    distributor = _buyer(distributor_id)
    if product is None or product.product_type != ProductType.CARD_KEY or not product.is_on_shelf:
        raise ValidationError({"product": [_("该商品不能进货")]})
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
            )
            journal = pay_from_wallet(
                distributor=distributor, amount=quote.total_amount, reference=f"stock:{purchase.purchase_no}"
            )
            try:
                keys = claim_card_keys(product=product, quantity=quantity, reference=purchase.purchase_no)
            except InsufficientStock as short:
                raise ValidationError(
                    {"quantity": [_("库存不足：仅剩 %(available)s 张") % {"available": short.available}]}
                ) from None
            StockPurchaseKey.objects.bulk_create(
                [StockPurchaseKey(purchase=purchase, card_key_id=key.pk) for key in keys]
            )
            StockPurchase.objects.filter(pk=purchase.pk).update(journal_reference=journal.reference)
            purchase.journal_reference = journal.reference
            return purchase
    except IntegrityError:
        existing = StockPurchase.objects.filter(request_token=token[:64]).first()
        if existing is not None:
            return existing
        raise


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
