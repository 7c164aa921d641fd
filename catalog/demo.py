"""Catalog demo data: categories, one product of each type, with the features that make them
worth looking at (custom fields, a top-up rule, bundle contents, an image). Idempotent."""

import io
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from .models import BundleItem, Category, Product, ProductCustomField, ProductType, RechargeTargetRule
from .validation import sanitize_description

DEMO_DESCRIPTIONS = {
    "Steam 钱包充值卡 50 元": (
        "<p><strong>自动发货</strong>：付款后立即显示卡密，可在订单页再次查看。</p>"
        "<ul><li>适用于 Steam 国区钱包</li><li>卡密一经售出不退不换</li></ul>"
        '<p>兑换入口：<a href="https://store.steampowered.com/account/redeemwalletcode">Steam 官网</a></p>'
    ),
    "中国移动话费直充 100 元": "<p>填写中国移动手机号，<em>一般 10 分钟内到账</em>，高峰期可能延迟。</p>",
    "视频会员月卡（人工开通）": "<p>客服人工开通，工作时间 9:00–22:00，请留下准确的账号。</p>",
    "玩家套餐：Steam 50 + 会员月卡": "<p>组合购买更划算：一张 Steam 50 元卡密 + 一个月视频会员。</p>",
}


def _demo_image() -> SimpleUploadedFile:
    """A small branded picture drawn with Pillow, so the demo needs no image files."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 640), (27, 40, 56))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((80, 180, 560, 460), radius=36, fill=(102, 192, 244))
    draw.rectangle((80, 250, 560, 300), fill=(23, 26, 33))
    draw.text((110, 380), "STEAM  50", fill=(23, 26, 33))
    out = io.BytesIO()
    image.save(out, "PNG")
    return SimpleUploadedFile("steam-50.png", out.getvalue(), content_type="image/png")


@transaction.atomic
def load_catalog_demo(*, owner) -> None:
    from .services import add_product_image

    games, _ = Category.objects.get_or_create(slug="games", defaults={"name": "游戏点卡"})
    mobile, _ = Category.objects.get_or_create(slug="mobile", defaults={"name": "话费充值"})
    members, _ = Category.objects.get_or_create(slug="members", defaults={"name": "会员卡"})
    demo_products = [
        ("steam-50", "Steam 钱包充值卡 50 元", games, ProductType.CARD_KEY, "50.00", "48.00", "45.00"),
        ("mobile-100", "中国移动话费直充 100 元", mobile, ProductType.DIRECT_RECHARGE, "100.00", "98.50", "97.00"),
        ("vip-month", "视频会员月卡（人工开通）", members, ProductType.MANUAL, "25.00", "19.90", "15.00"),
        ("gamer-pack", "玩家套餐：Steam 50 + 会员月卡", games, ProductType.BUNDLE, None, "66.00", "60.00"),
    ]
    products = {}
    for slug, name, category, product_type, face, price, cost in demo_products:
        products[slug], _ = Product.objects.get_or_create(
            name=name,
            defaults={
                "category": category,
                "product_type": product_type,
                "face_value": Decimal(face) if face else None,
                "retail_price": Decimal(price),
                "cost_price": Decimal(cost),
                "is_on_shelf": True,
                "description": sanitize_description(DEMO_DESCRIPTIONS[name]),
            },
        )

    top_up = products["mobile-100"]
    if not top_up.recharge_target_rule:
        top_up.recharge_target_rule = RechargeTargetRule.MOBILE
        top_up.recharge_target_label = "充值手机号"
        top_up.save(update_fields=["recharge_target_rule", "recharge_target_label", "updated_at"])

    vip = products["vip-month"]
    ProductCustomField.objects.get_or_create(
        product=vip,
        name="account",
        defaults={"label": "会员账号", "field_type": "mobile", "help_text": "开通会员的手机号", "sort_order": 0},
    )
    ProductCustomField.objects.get_or_create(
        product=vip,
        name="note",
        defaults={"label": "备注", "is_required": False, "help_text": "如需指定开通时间请注明", "sort_order": 1},
    )

    bundle = products["gamer-pack"]
    for component in (products["steam-50"], vip):
        BundleItem.objects.get_or_create(bundle=bundle, component=component, defaults={"quantity": 1})

    steam = products["steam-50"]
    if not steam.images.exists():
        add_product_image(product=steam, upload=_demo_image(), actor=owner)


def load_vault_demo(*, owner) -> None:
    """Twenty card keys for the demo Steam product, through the real import path, once."""
    from .models import CardKeyImport
    from .services import confirm_card_key_import, run_card_key_import, start_card_key_import, validate_card_key_import

    product = Product.objects.get(name="Steam 钱包充值卡 50 元")
    if CardKeyImport.objects.filter(product=product, source_name="demo").exists():
        return
    text = "\n".join(f"STEAM50-{number:04d},DEMO-{number:04d}-XKCD-7QPL" for number in range(1, 21))
    import_job = start_card_key_import(product=product, actor=owner, text=text, source_name="demo", separator=",")
    # Run the jobs here so the demo is complete when `make run` prints its logins; the queued
    # copies find the import already past their step and do nothing.
    validate_card_key_import(import_id=import_job.pk)
    import_job.refresh_from_db()
    confirm_card_key_import(import_job=import_job, actor=owner)
    run_card_key_import(import_id=import_job.pk)


def load_stock_demo(*, owner) -> None:
    """A reusable-key product (循环卡密) with some sales against its cap, and two voided Steam
    keys, so the stock overview shows every state. Idempotent."""
    from .models import CardKey, CardKeyStatus, ReusableCardKey
    from .services import (
        check_stock_levels,
        claim_reusable_key,
        set_reusable_key_cap,
        set_reusable_key_secret,
        void_card_keys,
    )

    games = Category.objects.get(slug="games")
    tutorial, _ = Product.objects.get_or_create(
        name="Steam 新手教程（网盘下载，循环卡密）",
        defaults={
            "category": games,
            "product_type": ProductType.CARD_KEY,
            "retail_price": Decimal("9.90"),
            "cost_price": Decimal("0.00"),
            "is_on_shelf": True,
            "low_stock_threshold": 20,
            "description": sanitize_description("<p>付款后显示网盘链接和提取码，所有买家收到相同内容。</p>"),
        },
    )
    if not ReusableCardKey.objects.filter(product=tutorial).exists():
        reusable = set_reusable_key_secret(
            product=tutorial, secret="https://pan.example.com/s/kamen-demo 提取码 7788", actor=owner
        )
        set_reusable_key_cap(reusable_key=reusable, sales_cap=500, actor=owner)
        claim_reusable_key(product=tutorial, quantity=12, reference="DEMO")

    steam = Product.objects.get(name="Steam 钱包充值卡 50 元")
    if not CardKey.objects.filter(product=steam, status=CardKeyStatus.VOID).exists():
        spare = CardKey.objects.filter(product=steam, status=CardKeyStatus.AVAILABLE).order_by("-id")[:2]
        void_card_keys(card_key_ids=[key.pk for key in spare], reason="演示：供应商告知已泄露", actor=owner)
    check_stock_levels()
