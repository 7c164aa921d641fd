"""Two web hosts with their own disks and one S3-compatible store (moto's server on loopback):
an image uploaded through one host is served by the other, and a poster is byte-identical
whichever host draws it (issue 25)."""

import io
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from PIL import Image

from distribution.tests.factories import DistributorFactory, ProductFactory

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "kamen-test"


@pytest.fixture
def object_store():
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


def host(name: str, tmp_path: Path, endpoint: str):
    """Run one command on a host of its own: own var/ and media directories, shared database
    (the test database) and shared bucket."""
    home = tmp_path / name
    environment = {key: value for key, value in os.environ.items() if not key.startswith("KAMEN_S3_")}
    database = settings.DATABASES["default"]
    environment |= {
        "DJANGO_SETTINGS_MODULE": "kamen.settings.test",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "KAMEN_VAR_DIR": str(home),
        "MEDIA_ROOT": str(home / "media"),
        "KAMEN_PRIVATE_ROOT": str(home / "private"),
        "KAMEN_S3_BUCKET": BUCKET,
        "KAMEN_S3_ENDPOINT_URL": endpoint,
        "KAMEN_S3_ACCESS_KEY_ID": "test",
        "KAMEN_S3_SECRET_ACCESS_KEY": "test",
        "KAMEN_S3_REGION": "us-east-1",
        "SITE_URL": "https://shop.example.com",
    }

    def run(*command) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "kamen.tests.web_host", *map(str, command)],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run, home


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


@pytest.mark.django_db(transaction=True)
def test_an_image_uploaded_through_one_host_is_served_by_the_other(tmp_path, object_store):
    endpoint, s3 = object_store
    staff = get_user_model().objects.create_superuser(username="boss", password="kamen-test-pass")
    product = ProductFactory(name="两台主机的商品")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (300, 200), (12, 34, 56)).save(photo, "PNG")
    host_a, home_a = host("a", tmp_path, endpoint)
    host_b, home_b = host("b", tmp_path, endpoint)

    uploaded = host_a("upload-image", product.pk, staff.pk, photo)
    page = host_b("product-page", product.pk)

    assert uploaded["status"] == 302
    assert page["status"] == 200 and len(page["images"]) == 1
    with urllib.request.urlopen(page["images"][0], timeout=10) as response:  # noqa: S310 - loopback moto
        served = response.read()
    stored = s3.get_object(Bucket=BUCKET, Key=f"media/{uploaded['image']}")["Body"].read()
    assert served == stored
    with Image.open(io.BytesIO(served)) as image:
        assert image.size == (300, 200)
    # Neither host kept the file on its own disk.
    assert files_under(home_a / "media") == [] and files_under(home_b / "media") == []


@pytest.mark.django_db(transaction=True)
def test_a_poster_is_byte_identical_from_both_hosts(tmp_path, object_store):
    endpoint, s3 = object_store
    staff = get_user_model().objects.create_superuser(username="boss", password="kamen-test-pass")
    distributor = DistributorFactory()
    product = ProductFactory(name="海报商品")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (640, 480), (200, 80, 20)).save(photo, "PNG")
    host_a, home_a = host("a", tmp_path, endpoint)
    host_b, home_b = host("b", tmp_path, endpoint)
    host_a("upload-image", product.pk, staff.pk, photo)

    from_a = host_a("poster", product.pk, distributor.user_id)
    cached = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="private/posters/")["Contents"]]
    from_b_cached = host_b("poster", product.pk, distributor.user_id)
    # Host B draws it again itself (the cached copy removed): the same bytes.
    s3.delete_object(Bucket=BUCKET, Key=cached[0])
    from_b_drawn = host_b("poster", product.pk, distributor.user_id)

    assert from_a["status"] == from_b_cached["status"] == from_b_drawn["status"] == 200
    assert from_a["sha256"] == from_b_cached["sha256"] == from_b_drawn["sha256"]
    assert len(cached) == 1
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="private/posters/")["Contents"]] == cached
    assert files_under(home_a / "private") == [] and files_under(home_b / "private") == []


def test_the_bucket_is_created_once_and_a_second_run_changes_nothing(tmp_path, object_store):
    endpoint, s3 = object_store
    environment = {key: value for key, value in os.environ.items() if not key.startswith("KAMEN_S3_")} | {
        "DJANGO_SETTINGS_MODULE": "kamen.settings.test",
        "KAMEN_VAR_DIR": str(tmp_path),
        "KAMEN_S3_BUCKET": "kamen-new",
        "KAMEN_S3_ENDPOINT_URL": endpoint,
        "KAMEN_S3_ACCESS_KEY_ID": "test",
        "KAMEN_S3_SECRET_ACCESS_KEY": "test",
        "KAMEN_S3_REGION": "us-east-1",
    }

    def create():
        return subprocess.run(
            [sys.executable, "manage.py", "create_storage_bucket", "--wait", "5"],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )

    first, second = create(), create()

    assert first.returncode == 0 and "created" in first.stdout, first.stderr
    assert second.returncode == 0 and "exists" in second.stdout, second.stderr
    assert "kamen-new" in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]
