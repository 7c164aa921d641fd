"""What the open API does, for a verified ``Caller`` (docs/adr/0019). Views parse and call these.

Placing an order is the shop's own checkout (``place_order``: validation, risk check, stock held)
and the shop's own payment path (``pay_with_prepaid_balance``: the order marked paid once, the
prepaid balance debited through the journal under the order lock), all in one transaction with
the ``DockingOrder`` row whose unique (site, client_order_no) makes it idempotent. Fulfilment is
then the shop's: ``fulfil_order_task`` after the commit, the same sweeper if it stalls.
"""

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import Product
from catalog.selectors import product_stock_state, products_on_shelf, with_available_count
from commissions.services.prepaid import InsufficientPrepaid, pay_from_prepaid, prepaid_balance, prepaid_statement
from distribution.docking.errors import DockingError
from distribution.docking.services import Caller, record_api_use
from distribution.models import Distributor
from distribution.services import cost_price_for
from kamen.four_eyes import require_another_person
from orders.models import Order, OrderStatus
from orders.selectors import deliveries_for_buyer
from orders.services.checkout import place_order
from orders.services.payments import pay_with_prepaid_balance

from .models import ApiRefundRequest, ApiRefundStatus, DockingOrder

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
CLIENT_ORDER_NO_MAX = 64


def _distributor(caller: Caller) -> Distributor:
    return Distributor.objects.select_related("grade").get(pk=caller.distributor_id)


# --- catalog -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CatalogPage:
    items: list[dict]
    next_cursor: int | None


def catalog_page(
    *, caller: Caller, after_id: int = 0, limit: int = 50, updated_since: datetime | None = None
) -> CatalogPage:
    """Products on the shelf at the caller's price (their distributor's cost for one unit) with
    live stock, ordered by id, ``limit`` after the cursor ``after_id``."""
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    distributor = _distributor(caller)
    queryset = with_available_count(products_on_shelf()).filter(pk__gt=after_id).order_by("pk")
    if updated_since is not None:
        queryset = queryset.filter(updated_at__gte=updated_since)
    products = list(queryset.prefetch_related("custom_fields")[: limit + 1])
    items = []
    for product in products[:limit]:
        state = product_stock_state(product)
        items.append(
            {
                "id": product.pk,
                "name": product.name,
                "product_type": product.product_type,
                "price": cost_price_for(distributor=distributor, product=product, quantity=1),
                "retail_price": product.retail_price,
                "in_stock": state.in_stock,
                "stock": state.available,
                "min_quantity": product.min_quantity_per_order,
                "max_quantity": product.max_quantity_per_order,
                "requires_recharge_target": bool(
                    product.product_type == "direct_recharge" or product.recharge_target_rule
                ),
                "custom_fields": [
                    {"name": field.name, "label": field.label, "is_required": field.is_required}
                    for field in product.custom_fields.all()
                ],
                "updated_at": product.updated_at,
            }
        )
    record_api_use(caller=caller, operation="catalog_read", changes={"count": len(items)})
    next_cursor = products[limit - 1].pk if len(products) > limit else None
    return CatalogPage(items=items, next_cursor=next_cursor)


# --- orders ------------------------------------------------------------------------------------
def _fingerprint(product_id: int, quantity: int, recharge_target: str, buyer_fields: dict) -> str:
    canonical = json.dumps([product_id, quantity, recharge_target, buyer_fields], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _clean_client_order_no(raw) -> str:
    value = str(raw or "").strip()
    if (
        not value
        or len(value) > CLIENT_ORDER_NO_MAX
        or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
    ):
        raise DockingError("invalid_request", "client_order_no: 1-64 letters, digits, - or _")
    return value


@dataclass(frozen=True)
class PlacedOrder:
    docking_order: DockingOrder
    created: bool


def place_api_order(
    *,
    caller: Caller,
    product_id: int,
    quantity: int,
    client_order_no: str,
    recharge_target: str = "",
    buyer_fields: dict | None = None,
) -> PlacedOrder:
    """Place (or find again) the site's order ``client_order_no``. DockingError for every
    refusal; a refusal changes nothing (no order, no reservation, no debit)."""
    client_order_no = _clean_client_order_no(client_order_no)
    buyer_fields = buyer_fields or {}
    recharge_target = str(recharge_target or "")
    fingerprint = _fingerprint(product_id, quantity, recharge_target, buyer_fields)
    existing = _existing(caller, client_order_no, fingerprint)
    if existing is not None:
        return PlacedOrder(existing, created=False)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise DockingError("invalid_request", "quantity must be a positive integer")
    product = (
        Product.objects.filter(pk=product_id, is_on_shelf=True, category__is_active=True)
        .select_related("reusable_key")
        .first()
    )
    if product is None:
        raise DockingError("product_not_found")
    if not product.min_quantity_per_order <= quantity <= product.max_quantity_per_order:
        raise DockingError(
            "invalid_request",
            f"quantity must be between {product.min_quantity_per_order} and {product.max_quantity_per_order}",
        )
    unit_price = cost_price_for(distributor=_distributor(caller), product=product, quantity=quantity)
    try:
        with transaction.atomic():
            order = place_order(
                product=product,
                quantity=quantity,
                contact=caller.contact_email,
                query_password=secrets.token_urlsafe(12),
                buyer_fields=buyer_fields,
                recharge_target=recharge_target,
                buyer_ip=caller.client_ip or None,
                gateway="prepaid",
                wholesale_unit_price=unit_price,
                docking_site_id=caller.site_id,
                docking_order_limit=caller.order_limit,
            )
            docking_order = DockingOrder.objects.create(
                site_id=caller.site_id, order=order, client_order_no=client_order_no, request_fingerprint=fingerprint
            )
            # Audited before the debit, in the same transaction: the site's prepaid account row,
            # which every order of the site locks, is then held only from the debit to the commit.
            record_api_use(
                caller=caller,
                operation="order_placed",
                target_repr=order.order_no,
                changes={"client_order_no": client_order_no, "amount": str(order.total_amount), "quantity": quantity},
            )
            pay_with_prepaid_balance(
                order=order,
                debit=lambda paid: pay_from_prepaid(
                    distributor_id=caller.distributor_id,
                    amount=paid.total_amount,
                    credit_limit=caller.credit_limit,
                    reference=paid.order_no,
                    order_id=paid.pk,
                ),
            )
    except InsufficientPrepaid:
        raise DockingError("insufficient_balance") from None
    except ValidationError as error:
        messages = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
        if any("库存" in message for values in messages.values() for message in values):
            raise DockingError("out_of_stock") from None
        detail = "; ".join(f"{name}: {' '.join(values)}" for name, values in messages.items())
        raise DockingError("invalid_request", detail[:300]) from None
    except IntegrityError:
        # The same number placed at the same moment by another request: the constraint kept one.
        existing = _existing(caller, client_order_no, fingerprint)
        if existing is None:
            raise
        return PlacedOrder(existing, created=False)
    return PlacedOrder(docking_order, created=True)


def _existing(caller: Caller, client_order_no: str, fingerprint: str) -> DockingOrder | None:
    found = (
        DockingOrder.objects.select_related("order")
        .filter(site_id=caller.site_id, client_order_no=client_order_no)
        .first()
    )
    if found is not None and found.request_fingerprint != fingerprint:
        raise DockingError("client_order_no_conflict")
    return found


def docking_order_for(
    *, caller: Caller, client_order_no: str | None = None, order_no: str | None = None
) -> DockingOrder:
    """The caller's own order by either number; another site's number is "not found"."""
    queryset = DockingOrder.objects.select_related("order").filter(site_id=caller.site_id)
    if client_order_no:
        queryset = queryset.filter(client_order_no=str(client_order_no)[:CLIENT_ORDER_NO_MAX])
    elif order_no:
        queryset = queryset.filter(order__order_no=str(order_no)[:32])
    else:
        raise DockingError("order_not_found")
    found = queryset.first()
    if found is None:
        raise DockingError("order_not_found")
    return found


def order_view(*, caller: Caller, docking_order: DockingOrder, with_goods: bool, audit: bool = True) -> dict:
    """The order as the API shows it; the goods (decrypted card keys) only to its own site and
    only here: they are never logged (the audit row records that goods were read, not them).
    ``audit=False`` for the answer to a placement, which is audited as one already."""
    orders = Order.objects.all()
    if with_goods:
        orders = orders.prefetch_related("deliveries__card_key", "deliveries__product")
    order = orders.get(pk=docking_order.order_id)
    view = {
        "order_no": order.order_no,
        "client_order_no": docking_order.client_order_no,
        "status": order.status,
        "product_id": order.product_id,
        "quantity": order.quantity,
        "unit_price": order.unit_price,
        "total_amount": order.total_amount,
        "refunded_amount": order.refunded_amount,
        "created_at": order.created_at,
        "completed_at": order.completed_at,
        "goods": [],
    }
    if with_goods and order.status in (
        OrderStatus.COMPLETED,
        OrderStatus.PARTIALLY_FULFILLED,
        OrderStatus.PARTIALLY_REFUNDED,
    ):
        view["goods"] = [
            {"kind": item["kind"], "card_no": item["card_no"], "secret": item["secret"], "message": item["message"]}
            for item in deliveries_for_buyer(order=order)
        ]
    if audit:
        record_api_use(
            caller=caller,
            operation="order_read",
            target_repr=order.order_no,
            changes={"goods_shown": len(view["goods"])},
        )
    return view


# --- money -------------------------------------------------------------------------------------
def balance_view(*, caller: Caller) -> dict:
    balance = prepaid_balance(caller.distributor_id)
    limit = Decimal(caller.credit_limit)
    record_api_use(caller=caller, operation="balance_read")
    return {"balance": balance, "credit_limit": limit, "available": balance + limit, "currency": "CNY"}


def statement_view(*, caller: Caller, after_id: int = 0, limit: int = 50) -> dict:
    lines = prepaid_statement(
        distributor_id=caller.distributor_id, after_id=after_id, limit=min(max(limit, 1), MAX_PAGE_SIZE)
    )
    record_api_use(caller=caller, operation="statement_read", changes={"count": len(lines)})
    return {
        "items": [
            {
                "id": line.id,
                "created_at": line.created_at,
                "kind": line.kind,
                "amount": line.amount,
                "memo": line.memo,
                "order_no": _order_no(line.order_id),
            }
            for line in lines
        ],
        "next_cursor": lines[-1].id if len(lines) >= max(limit, 1) else None,
    }


def _order_no(order_id: int | None) -> str | None:
    if order_id is None:
        return None
    return Order.objects.filter(pk=order_id).values_list("order_no", flat=True).first()


# --- refunds -----------------------------------------------------------------------------------
def request_refund(*, caller: Caller, client_order_no: str, reason: str) -> ApiRefundRequest:
    """A refund request for staff review; a second one while the first is pending is the first."""
    docking_order = docking_order_for(caller=caller, client_order_no=client_order_no)
    reason = str(reason or "").strip()
    if not reason or len(reason) > 200:
        raise DockingError("invalid_request", "reason: 1-200 characters")
    order = docking_order.order
    if order.paid_amount - order.refunded_amount <= 0 or order.status in (
        OrderStatus.REFUNDED,
        OrderStatus.PENDING_PAYMENT,
    ):
        raise DockingError("refund_not_allowed")
    pending = docking_order.refund_requests.filter(status=ApiRefundStatus.PENDING).first()
    if pending is not None:
        return pending
    try:
        with transaction.atomic():
            made = ApiRefundRequest.objects.create(docking_order=docking_order, reason=reason)
            record_api_use(
                caller=caller, operation="refund_requested", target_repr=order.order_no, changes={"reason": reason}
            )
            return made
    except IntegrityError:
        return docking_order.refund_requests.get(status=ApiRefundStatus.PENDING)


__all__ = [
    "CatalogPage",
    "PlacedOrder",
    "balance_view",
    "catalog_page",
    "docking_order_for",
    "order_view",
    "place_api_order",
    "request_refund",
    "statement_view",
]


# --- staff review of refund requests -----------------------------------------------------------
def approve_refund_request(*, refund_request: ApiRefundRequest, actor, request=None) -> ApiRefundRequest:
    """Staff approve: the order refunded in full through the shop's refund service (keys voided,
    commissions reversed) and the money credited back to the prepaid balance, with the
    ``order.refunded`` webhook event, all in one transaction."""
    from commissions.services.prepaid import refund_to_prepaid
    from distribution.docking.services import add_webhook_event
    from orders.services.refunds import refund_order

    if actor is None or not actor.has_perm("orders.refund_order"):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("approving a refund needs orders.refund_order")
    with transaction.atomic():
        locked = (
            ApiRefundRequest.objects.select_for_update()
            .select_related("docking_order__order")
            .get(pk=refund_request.pk)
        )
        require_another_person(
            actor=actor,
            subject_user_ids=[locked.docking_order.site.distributor.user_id],
            what=_("对接退款申请"),
        )
        if locked.status != ApiRefundStatus.PENDING:
            raise ValidationError(_("该申请已处理"))
        order = locked.docking_order.order
        amount = order.paid_amount - order.refunded_amount
        refund = refund_order(
            order=order,
            amount=amount,
            reason=locked.reason,
            actor=actor,
            out_refund_no=f"API-{locked.pk}",
            request=request,
        )
        site = locked.docking_order.site
        refund_to_prepaid(
            distributor_id=site.distributor_id, amount=amount, reference=refund.out_refund_no, order_id=order.pk
        )
        locked.status = ApiRefundStatus.APPROVED
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        locked.save(update_fields=["status", "decided_by", "decided_at"])
        add_webhook_event(
            site_id=site.pk,
            kind="order.refunded",
            payload={
                "order_no": order.order_no,
                "client_order_no": locked.docking_order.client_order_no,
                "amount": str(amount),
            },
        )
    return locked


def reject_refund_request(*, refund_request: ApiRefundRequest, actor, request=None) -> ApiRefundRequest:
    from kamen.audit import record_audit

    if actor is None or not actor.has_perm("orders.refund_order"):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("deciding a refund request needs orders.refund_order")
    with transaction.atomic():
        locked = ApiRefundRequest.objects.select_for_update().get(pk=refund_request.pk)
        require_another_person(
            actor=actor,
            subject_user_ids=[locked.docking_order.site.distributor.user_id],
            what=_("对接退款申请"),
        )
        if locked.status != ApiRefundStatus.PENDING:
            raise ValidationError(_("该申请已处理"))
        locked.status = ApiRefundStatus.REJECTED
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        locked.save(update_fields=["status", "decided_by", "decided_at"])
        record_audit(actor=actor, action="docking.refund_rejected", target=locked, request=request)
    return locked


def record_delivered_event(*, order: Order, site_id: int) -> None:
    """``order.delivered`` into the outbox, inside the delivery transaction (fulfilment's
    ``_complete_locked``). The goods are not in the event: the site reads them over the API."""
    from distribution.docking.services import add_webhook_event

    client_order_no = (
        DockingOrder.objects.filter(order_id=order.pk)
        .exclude(site__webhook_url="")
        .values_list("client_order_no", flat=True)
        .first()
    )
    if client_order_no is None:
        return  # the site has no callback URL: nothing to tell (one statement, not two)
    add_webhook_event(
        site_id=site_id,
        kind="order.delivered",
        payload={"order_no": order.order_no, "client_order_no": client_order_no, "status": OrderStatus.COMPLETED.value},
    )
