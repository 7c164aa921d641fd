"""Demo sales for `make run`: two Steam keys sold through the demo network's 推广员 link, so the
portal, the wallets and the commission statements have something to show."""

from decimal import Decimal

from django.db import transaction

from catalog.models import Product, SupplierAdapter
from catalog.services.suppliers import create_supplier
from catalog.services.upstream import dock_upstream_items, parse_markup
from catalog.suppliers.kamen_api import UpstreamProduct
from commissions.services.prepaid import top_up_prepaid
from distribution.demo import load_docking_distributor
from distribution.docking.models import ApiScope, DockingSite
from distribution.docking.services import apply_for_docking, approve_docking_site, create_api_key
from distribution.services.pricing import cost_price_for, set_sub_store_price
from orders.gateways.sandbox import SandboxGateway, signed_body
from orders.services import fulfil_order, place_order, record_payment_notification


def load_demo_sales(*, root, link_code: str) -> None:
    """Two Steam keys sold through the 推广员's WeChat link, paid with the sandbox gateway and
    delivered by the real pipeline: the upline's commissions come from real sales."""
    steam = Product.objects.filter(name="Steam 钱包充值卡 50 元").first()
    if steam is None:
        return
    set_sub_store_price(distributor=root, product=steam, price=Decimal("47.50"))
    for number, contact in enumerate(("13800138001", "buyer@example.com"), start=1):
        order = place_order(
            product=steam,
            quantity=1,
            contact=contact,
            query_password="demo1234",
            referral={"code": link_code, "channel": "wechat"},
        )
        body, headers = signed_body(
            {
                "app_id": SandboxGateway().app_id,
                "event_id": f"DEMO-NETWORK-{number}-{order.order_no}",
                "out_trade_no": order.order_no,
                "trade_no": f"SBX-DEMO-{order.order_no}",
                "amount": f"{order.total_amount:.2f}",
                "currency": "CNY",
                "status": "succeeded",
                "paid_at": None,
            }
        )
        record_payment_notification(gateway_code=SandboxGateway.code, body=body, headers=headers)
        fulfil_order(order_id=order.pk)


# --- docking (issue 17 §2): the demo site is its own upstream -----------------------------------
DOCKING_USERNAME = "dock_demo"
DOCKING_SUPPLIER = "本站演示上游（对接）"
# (the upstream product here, the docked product's name)
DOCKED_PRODUCTS = [
    ("Steam 钱包充值卡 50 元", "Steam 钱包充值卡 50 元（对接上游）"),
    ("中国移动话费直充 100 元", "中国移动话费直充 100 元（对接上游）"),
]


@transaction.atomic
def load_docking_demo(*, owner, password: str) -> None:
    """Products docked from a sandbox upstream served by this Kamen itself, so `make run` shows
    the whole flow: a docking site (a 总代 with a prepaid balance and an API key), a supplier that
    calls this site's open API with that key (a path on this site, resolved against SITE_URL),
    and two products docked through it at a 60 % markup. A buyer's order for one buys from
    "the upstream" over signed HTTP — this same site — and delivers what it returned.

    Idempotent: nothing is added when the demo docking site exists (its key's secret is shown
    once, so it is never re-issued); all of it in one transaction."""
    if DockingSite.objects.filter(distributor__user__username=DOCKING_USERNAME).exists():
        return
    sources = [(Product.objects.filter(name=name).first(), docked_name) for name, docked_name in DOCKED_PRODUCTS]
    sources = [(source, docked_name) for source, docked_name in sources if source is not None]
    if not sources:
        return
    distributor = load_docking_distributor(
        owner=owner, username=DOCKING_USERNAME, display_name="演示对接站", password=password
    )
    site = apply_for_docking(distributor=distributor, name="演示对接站（本站自对接）", contact_email="dock@example.com")
    site = approve_docking_site(site=site, actor=owner)
    top_up_prepaid(distributor_id=distributor.pk, amount="5000.00", reference=f"demo-docking-{site.pk}", actor=owner)
    key, secret = create_api_key(site=site, scopes=list(ApiScope.values), label="演示对接", actor=owner)
    supplier = create_supplier(
        actor=None,
        name=DOCKING_SUPPLIER,
        adapter=SupplierAdapter.KAMEN_API,
        base_url="/",
        app_id=key.key_id,
        app_secret=secret,
        low_balance_threshold=Decimal("500.00"),
    )
    # 60 %: the demo's grade commissions (up to 17 % over three levels, and a 总代's sub-store
    # margin) must fit in the docked product's margin, or the commission guard refuses it.
    markup = parse_markup(kind="percent", value="60", rounding="yuan")
    for source, docked_name in sources:
        item = UpstreamProduct(
            sku=str(source.pk),
            name=docked_name,
            product_type=source.product_type,
            price=cost_price_for(distributor=distributor, product=source),
            stock=None,
            in_stock=True,
            requires_recharge_target=source.product_type == "direct_recharge",
        )
        # Next to what it docks, in the source's category.
        (product,) = dock_upstream_items(
            supplier=supplier, items=[item], markup=markup, category=source.category, actor=owner
        )
        if source.recharge_target_rule:
            # The docked top-up asks the buyer for the same account as the upstream's.
            Product.objects.filter(pk=product.pk).update(recharge_target_rule=source.recharge_target_rule)
