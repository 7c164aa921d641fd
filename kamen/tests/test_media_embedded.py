"""`make run` (the embedded default, or the real mode on one host) shows product images: /media/
is served from the storage, without DEBUG, while files live on this host's disk. With an
S3-compatible store the bucket's own URLs serve them."""

import importlib
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import clear_url_caches
from PIL import Image

pytestmark = pytest.mark.django_db


def reload_urls():
    import kamen.urls

    clear_url_caches()
    importlib.reload(kamen.urls)


@pytest.fixture
def embedded(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.DEBUG = False
    settings.IS_EMBEDDED_DATABASE = True
    reload_urls()
    yield
    settings.IS_EMBEDDED_DATABASE = False
    reload_urls()


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_product_image_is_served_in_the_embedded_mode(client, embedded):
    name = default_storage.save("products/2026/12/product-1.png", ContentFile(png()))

    response = client.get(default_storage.url(name))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == png()


@pytest.mark.parametrize(
    "path",
    [
        "/media/products/none.png",  # no such file
        "/media/../keys.json",  # var/keys.json sits beside var/media
        "/media/..%2fkeys.json",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/media//etc/passwd",
        "/media/notes.html",  # not an image: never served as a page of this site
        "/media/drawing.svg",
        "/media/products/",
    ],
)
def test_only_images_inside_the_storage_are_served(client, embedded, tmp_path, path):
    (tmp_path.parent / "keys.json").write_bytes(b"secret")
    default_storage.save("notes.html", ContentFile(b"<script>alert(1)</script>"))
    default_storage.save("drawing.svg", ContentFile(b"<svg onload=alert(1)></svg>"))

    assert client.get(path).status_code == 404


def test_a_single_host_real_mode_run_serves_its_images_too(client, settings, tmp_path):
    # given make run with DATABASE_URL (not embedded, no DEBUG) and files on this host's disk
    settings.MEDIA_ROOT = tmp_path
    settings.DEBUG = False
    settings.IS_EMBEDDED_DATABASE = False
    settings.KAMEN_S3_BUCKET = ""
    reload_urls()
    name = default_storage.save("products/p.png", ContentFile(png()))

    assert client.get(default_storage.url(name)).status_code == 200


def test_media_is_not_served_by_the_application_with_a_shared_object_store(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.DEBUG = False
    settings.IS_EMBEDDED_DATABASE = False
    settings.KAMEN_S3_BUCKET = "kamen"
    reload_urls()
    name = default_storage.save("products/p.png", ContentFile(png()))

    try:
        assert client.get(default_storage.url(name)).status_code == 404
    finally:
        settings.KAMEN_S3_BUCKET = ""
        reload_urls()
