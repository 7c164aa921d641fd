"""Posters render Chinese with a CJK font and are cached; copy passes the compliance filter or
is refused naming the offending words."""

import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from PIL import Image

from distribution.models import BannedWord, CustomCopy
from distribution.services import promotion

from .factories import DistributorFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = settings.STORAGES | {
        "private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "private", "base_url": None, "allow_overwrite": True},
        }
    }
    return tmp_path


def test_a_cjk_font_is_found_and_has_chinese_glyphs():
    path = promotion.find_cjk_font()

    assert promotion._has_cjk_glyph(path)


def test_a_missing_font_is_reported_clearly(monkeypatch):
    monkeypatch.setenv("KAMEN_CJK_FONT", "/nowhere/font.ttc")

    with pytest.raises(promotion.FontNotFound) as raised:
        promotion.find_cjk_font()

    assert "/nowhere/font.ttc" in str(raised.value)


def test_a_poster_is_a_png_of_the_expected_size_with_chinese_drawn():
    product = ProductFactory(name="腾讯视频会员月卡")

    data = promotion.render_poster_png(
        product=product,
        price=Decimal("19.90"),
        link_url="http://testserver/r/RABC/",
        recommender="小王",
    )

    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    assert image.size == promotion.POSTER_SIZE
    # The name line is drawn: dark pixels in the band under the picture.
    band = image.crop((30, 670, 720, 720)).convert("L")
    assert band.getextrema()[0] < 100


def test_posters_are_cached_and_redrawn_when_the_product_changes(media):
    distributor = DistributorFactory()
    product = ProductFactory(name="爱奇艺黄金会员")
    storage = promotion.poster_storage()

    first = promotion.poster_for(
        distributor=distributor,
        product=product,
        price=Decimal("20.00"),
        link_url="http://t/r/A/",
    )
    again = promotion.poster_for(
        distributor=distributor,
        product=product,
        price=Decimal("20.00"),
        link_url="http://t/r/A/",
    )
    assert again == first
    assert storage.exists(first.name)

    product.name = "爱奇艺黄金会员年卡"
    product.save()
    changed = promotion.poster_for(
        distributor=distributor,
        product=product,
        price=Decimal("20.00"),
        link_url="http://t/r/A/",
    )

    assert changed.png != first.png
    assert not storage.exists(first.name)
    assert storage.exists(changed.name)


def test_posters_live_in_the_private_storage_not_under_media(media):
    distributor = DistributorFactory()
    product = ProductFactory(name="优酷会员")

    poster = promotion.poster_for(
        distributor=distributor, product=product, price=Decimal("15.00"), link_url="http://t/r/A/"
    )

    assert (media / "private" / poster.name).read_bytes() == poster.png
    assert not (media / "media").exists() or not any((media / "media").rglob("*.png"))


def test_the_same_inputs_draw_the_same_bytes(media):
    product = ProductFactory(name="哔哩哔哩大会员")
    _with_image(product, color=(10, 120, 200))
    arguments = dict(product=product, price=Decimal("25.00"), link_url="http://t/r/A/", recommender="小王")
    picture = promotion._product_image(product)

    first = promotion.render_poster_png(**arguments, picture=picture.copy())
    second = promotion.render_poster_png(**arguments, picture=picture.copy())

    assert first == second
    chunks = _png_chunk_types(first)
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    assert not {b"tIME", b"tEXt", b"iTXt", b"zTXt", b"eXIf"} & set(chunks)


def test_a_new_product_image_draws_a_new_poster(media):
    distributor = DistributorFactory()
    product = ProductFactory(name="芒果TV会员")
    _with_image(product, color=(200, 0, 0))
    arguments = dict(distributor=distributor, product=product, price=Decimal("9.90"), link_url="http://t/r/A/")
    red = promotion.poster_for(**arguments)
    product.images.all().delete()

    _with_image(product, color=(0, 200, 0))
    green = promotion.poster_for(**arguments)

    assert green.name != red.name and green.png != red.png


def test_an_unreadable_product_image_is_never_cached_as_the_poster(media):
    distributor = DistributorFactory()
    product = ProductFactory(name="QQ音乐绿钻")
    image = _with_image(product, color=(0, 0, 200))
    arguments = dict(distributor=distributor, product=product, price=Decimal("12.00"), link_url="http://t/r/A/")
    stored = image.image.storage.open(image.image.name).read()
    image.image.storage.delete(image.image.name)

    placeholder = promotion.poster_for(**arguments)

    assert placeholder.name == ""
    assert not promotion.poster_storage().exists(f"posters/{distributor.pk}")
    # The file comes back (the other host finished writing it): the real poster is drawn.
    image.image.storage.save(image.image.name, ContentFile(stored))
    real = promotion.poster_for(**arguments)
    assert real.name and real.png != placeholder.png


def _with_image(product, *, color):
    from catalog.models import ProductImage

    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(buffer, "PNG")
    row = ProductImage(product=product, width=320, height=240)
    row.image.save(f"product-{product.pk}.png", ContentFile(buffer.getvalue()), save=False)
    row.save()
    return row


def _png_chunk_types(data: bytes) -> list[bytes]:
    position, types = 8, []
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        types.append(data[position + 4 : position + 8])
        position += 12 + length
    return types


def test_copy_with_banned_claims_is_refused_and_names_every_word():
    distributor = DistributorFactory()

    with pytest.raises(ValidationError) as raised:
        promotion.publish_custom_copy(
            distributor=distributor,
            channel="wechat",
            body="全网最低价，100%到账，绝对第一！",
        )

    text = " ".join(raised.value.message_dict["body"])
    for word in ("最", "第一", "100%", "绝对", "全网最低"):
        assert word in text
    assert CustomCopy.objects.count() == 0


def test_the_merchant_can_add_banned_words_and_clean_copy_is_published():
    distributor = DistributorFactory()
    BannedWord.objects.create(word="秒杀全网")

    with pytest.raises(ValidationError):
        promotion.publish_custom_copy(
            distributor=distributor, channel="douyin", body="今天秒杀全网"
        )
    published = promotion.publish_custom_copy(
        distributor=distributor, channel="douyin", body="会员卡自动发货，下单秒到"
    )

    assert published.is_published is True


def test_copy_templates_fill_in_the_link_literally():
    text = promotion.fill_copy(
        body="{product} 仅 {price} 元 {link} {unknown}",
        link="http://t/r/A/",
        product_name="会员",
        price="9.90",
    )

    assert text == "会员 仅 9.90 元 http://t/r/A/ {unknown}"
