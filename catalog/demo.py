"""Catalog demo data: categories, one product of each type. Idempotent."""

from decimal import Decimal

from django.db import transaction

from .models import Category, Product, ProductType


@transaction.atomic
def load_catalog_demo(*, owner) -> None:
    games, _ = Category.objects.get_or_create(slug="games", defaults={"name": "游戏点卡"})
    mobile, _ = Category.objects.get_or_create(slug="mobile", defaults={"name": "话费充值"})
    members, _ = Category.objects.get_or_create(slug="members", defaults={"name": "会员卡"})
    demo_products = [
        ("steam-50", "Steam 钱包充值卡 50 元", games, ProductType.CARD_KEY, "50.00", "48.00", "45.00"),
        ("mobile-100", "中国移动话费直充 100 元", mobile, ProductType.DIRECT_RECHARGE, "100.00", "98.50", "97.00"),
        ("vip-month", "视频会员月卡（人工开通）", members, ProductType.MANUAL, "25.00", "19.90", "15.00"),
        ("gamer-pack", "玩家套餐：Steam 50 + 会员月卡", games, ProductType.BUNDLE, None, "66.00", "60.00"),
    ]
    for _slug, name, category, product_type, face, price, cost in demo_products:
        Product.objects.get_or_create(
            name=name,
            defaults={
                "category": category,
                "product_type": product_type,
                "face_value": Decimal(face) if face else None,
                "retail_price": Decimal(price),
                "cost_price": Decimal(cost),
                "is_on_shelf": True,
            },
        )
