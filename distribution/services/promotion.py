"""Promotion material: posters (PNG with the product and the distributor's QR code), copy
templates with the link filled in, and the compliance filter (合规话术库) on custom copy.

Posters are deterministic and cached in the shared "private" storage (every host sees it; only
the portal's own view hands a poster out). The cache key is a hash of everything that decides the
bytes: the product and its ``updated_at``, price, link, distributor, the product image's stored
name (a new upload gets a new name), the font file's content, Pillow's and FreeType's versions
and the layout version. The same inputs give the same PNG on every host (no timestamps or other
metadata in the file), so whichever host draws it first, all hosts serve the same bytes. A poster
drawn without the product image because it could not be read is served but never cached under
the real poster's key. Drawing happens outside any transaction.
"""

import functools
import hashlib
import io
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import PIL
import qrcode
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.utils.translation import gettext as _
from PIL import Image, ImageDraw, ImageFont, features

from ..models import BannedWord, Channel, CopyTemplate, CustomCopy, Distributor

logger = logging.getLogger(__name__)

POSTER_SIZE = (750, 1200)
# Bump when the drawing below changes, so cached posters are drawn again.
POSTER_LAYOUT_VERSION = "2"
CJK_FONT_CANDIDATES = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
]


class FontNotFound(RuntimeError):
    pass


def find_cjk_font() -> str:
    """A font file that has Chinese glyphs: $KAMEN_CJK_FONT, known paths, then fontconfig."""
    configured = os.environ.get("KAMEN_CJK_FONT") or getattr(
        settings, "KAMEN_CJK_FONT", ""
    )
    if configured:
        if Path(configured).is_file():
            return configured
        raise FontNotFound(
            _("KAMEN_CJK_FONT 指定的字体文件不存在：%(path)s") % {"path": configured}
        )
    for candidate in CJK_FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    if shutil.which("fc-match"):
        try:
            found = subprocess.run(
                ["fc-match", "-f", "%{file}", ":lang=zh-cn"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            found = ""
        if found and Path(found).is_file() and _has_cjk_glyph(found):
            return found
    raise FontNotFound(
        _(
            "找不到中文（CJK）字体，无法生成海报：请安装 fonts-noto-cjk，或用环境变量 KAMEN_CJK_FONT 指定字体文件"
        )
    )


def _has_cjk_glyph(path: str) -> bool:
    try:
        font = ImageFont.truetype(path, 24)
    except OSError:
        return False
    return font.getmask("中").getbbox() is not None


@functools.lru_cache(maxsize=16)
def _font_at(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _font(size: int) -> ImageFont.FreeTypeFont:
    return _font_at(find_cjk_font(), size)


def _wrap(
    draw: ImageDraw.ImageDraw, text: str, font, width: int, max_lines: int
) -> list[str]:
    """Chinese wraps between any two characters; cut with an ellipsis past ``max_lines``."""
    lines, current = [], ""
    for char in text:
        if draw.textlength(current + char, font=font) > width:
            lines.append(current)
            current = char
        else:
            current += char
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:-1] + "…"
    return lines


class ProductImageUnreadable(Exception):
    """The product has an image, but its file could not be read (missing, truncated)."""


def _first_image_name(product) -> str:
    return product.images.order_by("sort_order", "id").values_list("image", flat=True).first() or ""


def _product_image(product) -> Image.Image | None:
    """The product's first image, None if it has none; ProductImageUnreadable if it has one that
    cannot be opened (so the caller never mistakes a broken file for "no image")."""
    image_row = product.images.order_by("sort_order", "id").first()
    if image_row is None or not image_row.image:
        return None
    try:
        with image_row.image.open("rb") as handle:
            picture = Image.open(handle)
            picture.load()
        return picture.convert("RGB")
    except (OSError, ValueError) as error:
        raise ProductImageUnreadable(image_row.image.name) from error


@functools.lru_cache(maxsize=8)
def _file_digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def poster_key(*, product, price: Decimal, link_url: str, distributor: Distributor) -> str:
    """A hash of every input that decides the poster's bytes."""
    raw = "|".join(
        [
            POSTER_LAYOUT_VERSION,
            str(product.pk),
            product.updated_at.isoformat(),
            product.name,
            str(price),
            link_url,
            str(distributor.pk),
            str(distributor.user),
            _first_image_name(product),
            _file_digest(find_cjk_font()),
            PIL.__version__,
            features.version("freetype2") or "",
        ]
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _draw_placeholder(draw: ImageDraw.ImageDraw, product, width: int) -> None:
    draw.rectangle((0, 0, width, 640), fill="#f4f1ea")
    draw.text((width // 2, 320), product.name[:1], font=_font(220), fill="#c8102e", anchor="mm")


def render_poster_png(*, product, price: Decimal, link_url: str, recommender: str, picture=None) -> bytes:
    """Draw the poster: product image (``picture``, or a placeholder), name, price, the QR code of
    the link, who recommends. The PNG carries pixels only (no time, no text chunks), encoded with
    fixed settings, so the same inputs give the same bytes."""
    width, height = POSTER_SIZE
    canvas = Image.new("RGB", POSTER_SIZE, "white")
    draw = ImageDraw.Draw(canvas)
    if picture is not None:
        picture.thumbnail((width, 640))
        canvas.paste(picture, ((width - picture.width) // 2, (640 - picture.height) // 2))
    else:
        _draw_placeholder(draw, product, width)
    name_font, price_font, small = _font(40), _font(64), _font(26)
    y = 670
    for line in _wrap(draw, product.name, name_font, width - 60, 2):
        draw.text((30, y), line, font=name_font, fill="#222222")
        y += 54
    draw.text((30, y + 10), f"¥{price:.2f}", font=price_font, fill="#c8102e")
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=2)
    qr.add_data(link_url)
    qr.make(fit=True)
    qr_image = qr.make_image(fill_color="black", back_color="white").convert("RGB").resize((260, 260))
    canvas.paste(qr_image, (width - 290, height - 300))
    draw.text((30, height - 220), _("长按识别二维码购买"), font=small, fill="#555555")
    draw.text(
        (30, height - 175),
        _("推荐人：%(name)s") % {"name": recommender[:16]},
        font=small,
        fill="#555555",
    )
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


@dataclass(frozen=True)
class Poster:
    png: bytes
    name: str  # its name in the private storage; "" when it was not cached


def poster_storage():
    return storages["private"]


def poster_for(*, distributor: Distributor, product, price: Decimal, link_url: str) -> Poster:
    """The poster for this distributor and product, drawn once per distinct content into the
    shared private storage; an older poster of the same pair (the product changed) is removed."""
    storage = poster_storage()
    key = poster_key(product=product, price=price, link_url=link_url, distributor=distributor)
    folder = f"posters/{distributor.pk}"
    name = f"{folder}/{product.pk}-{key}.png"
    try:
        with storage.open(name, "rb") as cached:
            return Poster(png=cached.read(), name=name)
    except FileNotFoundError:
        pass
    except OSError:
        # Some backends (S3) say "missing" with another OSError; draw it again either way.
        logger.info("distribution.poster_cache_miss", extra={"poster": name})
    recommender = str(distributor.user)
    try:
        picture = _product_image(product)
    except ProductImageUnreadable as error:
        # Served so the distributor is not left without a poster, but not cached: the next
        # request (on any host) tries the real image again.
        logger.warning("distribution.poster_image_unreadable", extra={"product_id": product.pk, "image": str(error)})
        data = render_poster_png(product=product, price=price, link_url=link_url, recommender=recommender)
        return Poster(png=data, name="")
    data = render_poster_png(
        product=product, price=price, link_url=link_url, recommender=recommender, picture=picture
    )
    # Identical bytes whoever writes them, so a concurrent writer on another host is harmless.
    saved = storage.save(name, ContentFile(data))
    if saved != name:  # a backend that refuses to overwrite kept the other writer's copy
        storage.delete(saved)
    try:
        _directories, files = storage.listdir(folder)
    except (FileNotFoundError, OSError):
        files = []
    prefix = f"{product.pk}-"
    for stale in files:
        if stale.startswith(prefix) and f"{folder}/{stale}" != name:
            storage.delete(f"{folder}/{stale}")
    return Poster(png=data, name=name)


# --- copy and compliance ---------------------------------------------------------------------
def banned_words_in(text: str) -> list[str]:
    """The merchant's active banned words that occur in ``text`` (case-insensitive), in the
    order of the list."""
    lowered = str(text or "").lower()
    return [
        word
        for word in BannedWord.objects.filter(is_active=True).values_list(
            "word", flat=True
        )
        if word.lower() in lowered
    ]


def fill_copy(*, body: str, link: str, product_name: str = "", price: str = "") -> str:
    """Placeholders replaced literally (no str.format: braces in merchant text stay text)."""
    return (
        body.replace("{link}", link)
        .replace("{product}", product_name)
        .replace("{price}", price)
    )


def copy_templates(*, channel: str | None = None):
    queryset = CopyTemplate.objects.filter(is_active=True)
    if channel:
        queryset = queryset.filter(channel=channel)
    return queryset


@transaction.atomic
def publish_custom_copy(*, distributor: Distributor, channel: str, body) -> CustomCopy:
    """Publish a distributor's own copy if it makes no banned claim; otherwise refuse, naming
    every offending word, and publish nothing."""
    body = str(body or "").strip()
    if channel not in Channel.values:
        raise ValidationError(
            {"channel": [_("未知的推广渠道“%(channel)s”") % {"channel": channel}]}
        )
    if not body:
        raise ValidationError({"body": [_("请填写文案")]})
    if len(body) > 1000:
        raise ValidationError({"body": [_("文案最多 1000 个字")]})
    offending = banned_words_in(body)
    if offending:
        raise ValidationError(
            {
                "body": [
                    _("文案含有违规用语：%(words)s，请修改后再发布")
                    % {"words": "、".join(offending)}
                ]
            }
        )
    return CustomCopy.objects.create(
        distributor=distributor, channel=channel, body=body, is_published=True
    )
