"""Upstream supplier adapters. ``client_for(supplier)`` is the only way services get one."""

from .base import (
    OrderResult,
    OrderStatus,
    PriceQuote,
    SupplierClient,
    SupplierError,
    Transport,
    TransportResponse,
    TransportTimeout,
    TransportUnreachable,
    UnknownAdapter,
    UrllibTransport,
)
from .kamen_api import KamenApiSupplierClient
from .sandbox import InProcessTransport, SandboxSupplierClient

# "kamen_api": an upstream speaking Kamen's open API (another Kamen; docs/adr/0019).
ADAPTERS: dict[str, type[SupplierClient]] = {"sandbox": SandboxSupplierClient, "kamen_api": KamenApiSupplierClient}


def client_for(supplier, *, transport: Transport | None = None) -> SupplierClient:
    """A client for a Supplier row, its secret decrypted only here, in memory."""
    from django.conf import settings

    from kamen import crypto
    from kamen.site import resolve_on_site

    adapter = ADAPTERS.get(supplier.adapter)
    if adapter is None:
        raise UnknownAdapter(f"unknown supplier adapter {supplier.adapter!r} (known: {', '.join(sorted(ADAPTERS))})")
    secret = crypto.decrypt(key_id=supplier.app_secret_key_id, blob=supplier.app_secret_ciphertext, associated_data=b"supplier-secret")
    return adapter(
        base_url=resolve_on_site(supplier.base_url),
        app_id=supplier.app_id,
        app_secret=secret,
        transport=transport,
        timeout=settings.SUPPLIER_HTTP_TIMEOUT,
    )


__all__ = [
    "ADAPTERS",
    "InProcessTransport",
    "KamenApiSupplierClient",
    "OrderResult",
    "OrderStatus",
    "PriceQuote",
    "SandboxSupplierClient",
    "SupplierClient",
    "SupplierError",
    "Transport",
    "TransportResponse",
    "TransportTimeout",
    "TransportUnreachable",
    "UnknownAdapter",
    "UrllibTransport",
    "client_for",
]
