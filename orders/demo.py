"""Demo sales for `make run`: two Steam keys sold through the demo network's 推广员 link, so the
portal, the wallets and the commission statements have something to show."""

from decimal import Decimal

from catalog.models import Product
from distribution.services.pricing import set_sub_store_price
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
