"""Reads about suppliers: open alerts for the console, a top-up's attempts, usable channels."""

from django.db.models import QuerySet

from catalog.models import (
    Product,
    Supplier,
    SupplierAdapter,
    SupplierAlert,
    SupplierChannel,
    SupplierRechargeAttempt,
)

__all__ = ["open_supplier_alerts", "top_up_attempts", "upstream_for_webhooks", "usable_supplier_channels"]


def upstream_for_webhooks(*, supplier_pk: int) -> Supplier | None:
    """The active upstream Kamen with a webhook secret that a webhook URL names, else None."""
    return (
        Supplier.objects.filter(pk=supplier_pk, adapter=SupplierAdapter.KAMEN_API, is_active=True)
        .exclude(webhook_secret_key_id="")
        .first()
    )


def open_supplier_alerts() -> QuerySet[SupplierAlert]:
    return SupplierAlert.objects.filter(resolved_at__isnull=True).select_related("supplier", "product").order_by("-created_at")


def top_up_attempts(*, reference: str) -> QuerySet[SupplierRechargeAttempt]:
    """Every try for one order, first to last (what support looks at when a buyer asks)."""
    return SupplierRechargeAttempt.objects.filter(reference=reference).select_related("supplier", "channel").order_by("id")


def usable_supplier_channels(*, product: Product) -> QuerySet[SupplierChannel]:
    """Active, in-stock channels of active suppliers, best first (the circuit state is the
    service's business: it changes by the second)."""
    return (
        SupplierChannel.objects.filter(product=product, is_active=True, is_in_stock=True, supplier__is_active=True)
        .select_related("supplier")
        .order_by("priority", "id")
    )
