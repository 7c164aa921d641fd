"""The open API's request and response bodies (pydantic, through django-ninja). Money is a
string of yuan to the fen ("12.30"), never a float."""

from datetime import datetime
from decimal import Decimal

from ninja import Field, Schema


class ErrorOut(Schema):
    code: str = Field(description="stable machine-readable code, e.g. auth_nonce_reused")
    message_zh: str
    message_en: str
    detail: str | None = None


class CustomFieldOut(Schema):
    name: str
    label: str
    is_required: bool


class ProductOut(Schema):
    id: int
    name: str
    product_type: str
    price: Decimal = Field(description="your unit price (your grade's cost price for one unit)")
    retail_price: Decimal
    in_stock: bool
    stock: int | None = Field(description="available units; null when not counted (top-ups)")
    min_quantity: int
    max_quantity: int
    requires_recharge_target: bool
    custom_fields: list[CustomFieldOut]
    updated_at: datetime


class ProductPage(Schema):
    items: list[ProductOut]
    next_cursor: int | None = Field(description="pass as cursor for the next page; null at the end")


class OrderIn(Schema):
    product_id: int = Field(strict=True)
    quantity: int = Field(ge=1, le=10_000, strict=True)
    client_order_no: str = Field(
        min_length=1, max_length=64, description="your order number: the same one twice is one order"
    )
    recharge_target: str = Field("", max_length=120, description="top-up account for direct top-ups")
    custom_fields: dict[str, str] = Field(default_factory=dict)


class GoodsOut(Schema):
    kind: str
    card_no: str
    secret: str
    message: str


class OrderOut(Schema):
    order_no: str
    client_order_no: str
    status: str
    product_id: int = Field(strict=True)
    quantity: int
    unit_price: Decimal
    total_amount: Decimal
    refunded_amount: Decimal
    created_at: datetime
    completed_at: datetime | None
    goods: list[GoodsOut] = Field(description="delivered card keys / top-up results, once completed")


class BalanceOut(Schema):
    balance: Decimal
    credit_limit: Decimal
    available: Decimal
    currency: str


class StatementLineOut(Schema):
    id: int
    created_at: datetime
    kind: str
    amount: Decimal = Field(description="+ credited to your balance, − debited")
    memo: str
    order_no: str | None


class StatementOut(Schema):
    items: list[StatementLineOut]
    next_cursor: int | None


class RefundIn(Schema):
    reason: str = Field(min_length=1, max_length=200)


class RefundOut(Schema):
    id: int
    client_order_no: str
    status: str
    reason: str
    created_at: datetime


class WebhookEventOut(Schema):
    id: str = Field(description="event id: the same event may arrive more than once; drop repeats")
    type: str = Field(description="order.delivered, order.refunded, product.price_changed, product.stock_changed, ...")
    data: dict
