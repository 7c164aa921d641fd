from decimal import Decimal

import django_rq
import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from rq import SimpleWorker

from catalog.models import CardKey, CardKeyImport, Category, ImportStatus, Product, ProductType


@pytest.fixture(autouse=True)
def empty_queue():
    django_rq.get_queue("default").empty()
    yield
    django_rq.get_queue("default").empty()


@pytest.fixture
def product(db):
    category = Category.objects.create(name="点卡", slug="cards")
    return Product.objects.create(
        category=category, name="Steam 50", product_type=ProductType.CARD_KEY, retail_price=Decimal("48.00")
    )


def run_queued_jobs():
    django_rq.get_worker("default", worker_class=SimpleWorker).work(burst=True)


@pytest.mark.django_db
def test_operator_pastes_previews_confirms_and_sees_the_import_complete(
    client, staff_user, product, django_capture_on_commit_callbacks
):
    client.force_login(staff_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/console/imports/new/",
            {"product": product.pk, "text": "NO1,SECRET-ALPHA\nNO1,SECRET-ALPHA\nNO2,SECRET-BETA", "input_format": "auto", "separator": ","},
        )
    run_queued_jobs()
    import_job = CardKeyImport.objects.get()
    assert response.status_code == 302

    preview = client.get(f"/console/imports/{import_job.pk}/").content.decode()
    assert "与第 1 行重复" in preview
    assert "确认导入 2 张卡密" in preview
    assert "SECRET-ALPHA" not in preview
    assert "SECRET-BETA" not in preview

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/console/imports/{import_job.pk}/confirm/")
    run_queued_jobs()

    status = client.get(f"/console/imports/{import_job.pk}/status/").json()
    assert status["status"] == ImportStatus.COMPLETED
    assert status["imported"] == 2
    assert CardKey.objects.count() == 2


@pytest.mark.django_db
def test_a_gb18030_csv_upload_is_read(client, staff_user, product, django_capture_on_commit_callbacks):
    client.force_login(staff_user)
    upload = SimpleUploadedFile("卡密.csv", "卡号1,密码一\n卡号2,密码二".encode("gb18030"))

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/console/imports/new/", {"product": product.pk, "upload": upload, "input_format": "auto"})
    run_queued_jobs()

    assert CardKeyImport.objects.get().valid_count == 2


@pytest.mark.django_db
def test_a_binary_upload_is_refused_with_a_message_and_nothing_is_created(client, staff_user, product):
    client.force_login(staff_user)
    upload = SimpleUploadedFile("keys.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00")

    response = client.post("/console/imports/new/", {"product": product.pk, "upload": upload, "input_format": "auto"})

    assert response.status_code == 200
    assert "二进制" in response.content.decode()
    assert CardKeyImport.objects.count() == 0


@pytest.mark.django_db
def test_empty_submission_is_refused(client, staff_user, product):
    client.force_login(staff_user)

    response = client.post("/console/imports/new/", {"product": product.pk, "text": "  ", "input_format": "auto"})

    assert "请粘贴卡密或上传文件" in response.content.decode()
    assert CardKeyImport.objects.count() == 0


@pytest.mark.django_db
def test_staff_without_the_import_permission_are_refused(client, django_user_model, product):
    finance = django_user_model.objects.create_user(username="fin", password="x", is_staff=True)
    finance.groups.add(Group.objects.get(name="finance"))
    client.force_login(finance)

    response = client.post("/console/imports/new/", {"product": product.pk, "text": "A", "input_format": "auto"})

    assert response.status_code == 403
    assert CardKeyImport.objects.count() == 0


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/console/imports/new/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
