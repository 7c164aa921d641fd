"""Demo network: four grades, a 总代 → 省代 → 市代 → 推广员 chain with portal logins, a
sub-store, referral links, and two sales through the real order pipeline so the portal, the
wallets and the commission statements have something to show. Idempotent."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import AdmissionMode, Distributor, DistributorStatus, Grade

DEMO_AGENTS = [
    # username, display name, grade
    ("agent_zong", "演示总代", "总代"),
    ("agent_sheng", "演示省代", "省代"),
    ("agent_shi", "演示市代", "市代"),
    ("agent_tui", "演示推广员", "推广员"),
]
GRADES = [
    # name, rank, wholesale discount, level 1/2/3 commission (bp), may open a sub-store, default
    ("总代", 40, 8000, (1000, 500, 200), True, False),
    ("省代", 30, 8500, (800, 400, 150), True, False),
    ("市代", 20, 9000, (600, 300, 100), True, False),
    ("推广员", 10, 10000, (500, 200, 100), False, True),
]


def _grades() -> dict[str, Grade]:
    grades = {}
    for name, rank, discount, (level1, level2, level3), sub_store, is_default in GRADES:
        grades[name], _created = Grade.objects.get_or_create(
            name=name,
            defaults={
                "rank": rank,
                "wholesale_discount_bp": discount,
                "commission_level1_bp": level1,
                "commission_level2_bp": level2,
                "commission_level3_bp": level3,
                "may_open_sub_store": sub_store,
                "may_see_floor_price": rank >= 30,
                "admission_mode": AdmissionMode.AUTOMATIC if is_default else AdmissionMode.STAFF,
                "is_default": is_default and not Grade.objects.filter(is_default=True).exists(),
            },
        )
    return grades


def _user(username: str, display_name: str, password: str):
    user, created = get_user_model().objects.get_or_create(username=username, defaults={"display_name": display_name})
    if created:
        user.set_password(password)
        user.save(update_fields=["password"])
    return user


def load_network_demo(*, owner, password: str) -> list[Distributor]:
    from .services.pricing import save_sub_store, set_sub_store_price
    from .services.referrals import create_referral_link
    from .services.tree import approve_distributor, create_invitation, create_root_distributor, join_network

    existing = Distributor.objects.filter(user__username="agent_tui").first()
    if existing is not None:
        return list(Distributor.objects.filter(user__username__in=[row[0] for row in DEMO_AGENTS]))
    with transaction.atomic():
        grades = _grades()
        users = {username: _user(username, display, password) for username, display, _grade in DEMO_AGENTS}
        root = create_root_distributor(user=users["agent_zong"], grade=grades["总代"], actor=owner, region="广东")
        chain = [root]
        for username, grade_name in (("agent_sheng", "省代"), ("agent_shi", "市代")):
            invitation = create_invitation(inviter=chain[-1], grade=grades[grade_name])
            member = join_network(user=users[username], code=invitation.code, region="广东")
            if member.status != DistributorStatus.ACTIVE:
                member = approve_distributor(distributor=member, actor=owner)
            chain.append(member)
        chain.append(join_network(user=users["agent_tui"], code=chain[-1].invite_code, region="深圳"))
        save_sub_store(distributor=root, name="总代旗舰店", slug="zongdai", notice="正品保障，自动发货")
        link = create_referral_link(distributor=chain[-1], channel="wechat", label="朋友圈")
        for channel in ("douyin", "xiaohongshu"):
            create_referral_link(distributor=chain[-1], channel=channel)
    _demo_sales(root=root, link_code=link.code, set_sub_store_price=set_sub_store_price)
    return chain


def _demo_sales(*, root, link_code: str, set_sub_store_price) -> None:
    """Two Steam keys sold through the 推广员's WeChat link, paid with the sandbox gateway and
    delivered by the real pipeline: the upline's commissions come from real sales."""
    from catalog.models import Product
    from orders.gateways.sandbox import SandboxGateway, signed_body
    from orders.services import fulfil_order, place_order, record_payment_notification

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
