"""product.price_changed / product.stock_changed / product.delisted for docking sites.

A periodic job (every 15 s, one run at a time) compares, per site with a callback URL, what the
site would see in the catalog now — its own price (its grade's cost), the stock, listed or not —
with what it was last told (``DockingProductSnapshot``), and writes one outbox event per
difference together with the new snapshot, in one transaction per site. A site's first run
records the snapshot silently (it has just read the catalog). Detecting changes by comparison
rather than in every catalog write keeps the catalog app free of docking, and reports a change
however it was made (console, import, supplier sync, a fulfilled order taking stock).
"""

from django.db import transaction

from catalog.selectors import product_stock_state, products_on_shelf, with_available_count

from ..models import Distributor
from ..services.pricing import cost_price_for
from .models import DockingProductSnapshot, DockingSite, DockingSiteStatus
from .services import add_webhook_event


def _current_view(distributor: Distributor) -> dict[int, tuple]:
    view = {}
    for product in with_available_count(products_on_shelf()).order_by("pk"):
        state = product_stock_state(product)
        view[product.pk] = (
            cost_price_for(distributor=distributor, product=product, quantity=1),
            state.available,
            state.in_stock,
        )
    return view


def emit_product_events_for(site: DockingSite) -> int:
    """Events written for ``site`` (see the module doc)."""
    distributor = Distributor.objects.select_related("grade").get(pk=site.distributor_id)
    view = _current_view(distributor)
    written = 0
    with transaction.atomic():
        known = {
            snapshot.product_id: snapshot
            for snapshot in DockingProductSnapshot.objects.select_for_update().filter(site=site)
        }
        first_run = not known
        for product_id, (price, stock, in_stock) in view.items():
            snapshot = known.get(product_id)
            if snapshot is None:
                DockingProductSnapshot.objects.create(
                    site=site, product_id=product_id, price=price, stock=stock, in_stock=in_stock
                )
                continue
            events = []
            if snapshot.price != price:
                events.append(
                    (
                        "product.price_changed",
                        {"product_id": product_id, "old_price": str(snapshot.price), "price": str(price)},
                    )
                )
            if snapshot.stock != stock or snapshot.in_stock != in_stock or not snapshot.is_listed:
                events.append(
                    ("product.stock_changed", {"product_id": product_id, "stock": stock, "in_stock": in_stock})
                )
            if events:
                if not first_run:
                    for kind, payload in events:
                        written += bool(add_webhook_event(site_id=site.pk, kind=kind, payload=payload))
                DockingProductSnapshot.objects.filter(pk=snapshot.pk).update(
                    price=price, stock=stock, in_stock=in_stock, is_listed=True
                )
        for product_id, snapshot in known.items():
            if product_id not in view and snapshot.is_listed:
                written += bool(
                    add_webhook_event(site_id=site.pk, kind="product.delisted", payload={"product_id": product_id})
                )
                DockingProductSnapshot.objects.filter(pk=snapshot.pk).update(is_listed=False)
    return written


def emit_product_events() -> int:
    sites = DockingSite.objects.filter(status=DockingSiteStatus.ACTIVE).exclude(webhook_url="")
    return sum(emit_product_events_for(site) for site in sites)
