"""Product images: only real, reasonably sized JPEG/PNG/WebP/GIF files, cleaned of EXIF."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from catalog import images as product_images
from catalog import services
from catalog.models import ProductImage
from catalog.tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def product():
    return ProductFactory()


def image_bytes(fmt="PNG", size=(800, 600), exif=None):
    out = io.BytesIO()
    kwargs = {"exif": exif} if exif is not None else {}
    Image.new("RGB", size, (200, 30, 30)).save(out, fmt, **kwargs)
    return out.getvalue()


def upload(data, name="photo.png"):
    return SimpleUploadedFile(name, data, content_type="image/png")


def test_a_good_image_is_stored_with_a_thumbnail(staff_user, product, media_root):
    image = services.add_product_image(product=product, upload=upload(image_bytes()), actor=staff_user)

    assert (image.width, image.height) == (800, 600)
    with Image.open(image.thumbnail.path) as thumb:
        assert max(thumb.size) == 400
    assert (media_root / image.image.name).exists()


def test_exif_is_stripped(staff_user, product):
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (39.0, 54.0, 0.0)}  # GPS
    data = image_bytes("JPEG", exif=exif.tobytes())
    assert b"SecretCam" in data

    image = services.add_product_image(product=product, upload=upload(data, "p.jpg"), actor=staff_user)

    stored = open(image.image.path, "rb").read()
    assert b"SecretCam" not in stored
    with Image.open(image.image.path) as reopened:
        assert not reopened.getexif()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not an image at all", "不是图片"),
        (image_bytes()[:200], "损坏或不完整"),
        (image_bytes("BMP"), "不支持的图片格式 BMP"),
        (b"", "空的"),
    ],
)
def test_bad_files_are_refused_and_nothing_is_saved(staff_user, product, media_root, data, message):
    with pytest.raises(ValidationError, match=message):
        services.add_product_image(product=product, upload=upload(data), actor=staff_user)

    assert ProductImage.objects.count() == 0
    assert not any(media_root.rglob("*.*"))


def test_files_over_the_size_limit_are_refused(staff_user, product, settings):
    settings.PRODUCT_IMAGE_MAX_BYTES = 1000

    with pytest.raises(ValidationError, match="图片太大"):
        services.add_product_image(product=product, upload=upload(image_bytes()), actor=staff_user)

    assert ProductImage.objects.count() == 0


def test_decompression_bombs_are_refused(staff_user, product, monkeypatch):
    monkeypatch.setattr(product_images, "MAX_PIXELS", 100 * 100)

    with pytest.raises(ValidationError, match="尺寸过大"):
        services.add_product_image(product=product, upload=upload(image_bytes(size=(200, 200))), actor=staff_user)


def test_pillow_bomb_guard_gives_a_clear_message(staff_user, product, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50 * 50)

    with pytest.raises(ValidationError, match="尺寸过大"):
        services.add_product_image(product=product, upload=upload(image_bytes(size=(200, 200))), actor=staff_user)
