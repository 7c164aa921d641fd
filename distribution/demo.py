"""Demo network: four grades, a 总代 → 省代 → 市代 → 推广员 chain with portal logins, a
sub-store and referral links (the sales through them: ``orders.demo``). Idempotent."""

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


def load_network_demo(*, owner, password: str) -> tuple[list[Distributor], str | None]:
    """The chain and the referral code of its 推广员's WeChat link, which the demo's sales go
    through (``orders.demo.load_demo_sales``); no code when the network was there already."""
    from .services.pricing import save_sub_store
    from .services.referrals import create_referral_link
    from .services.tree import approve_distributor, create_invitation, create_root_distributor, join_network

    existing = Distributor.objects.filter(user__username="agent_tui").first()
    if existing is not None:
        return list(Distributor.objects.filter(user__username__in=[row[0] for row in DEMO_AGENTS])), None
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
    return chain, link.code


def load_docking_distributor(*, owner, username: str, display_name: str, password: str):
    """A 总代 at the top of a tree of its own, for the demo docking site (``orders.demo``):
    the distributor a docking site is. Returns the existing one when there is one."""
    from .services.tree import create_root_distributor

    existing = Distributor.objects.filter(user__username=username).first()
    if existing is not None:
        return existing
    user = _user(username, display_name, password)
    return create_root_distributor(user=user, grade=_grades()["总代"], actor=owner, region="上海")
