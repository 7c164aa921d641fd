from decimal import Decimal

import django_rq
import pytest
from django.core.exceptions import ValidationError
from rq import SimpleWorker

from catalog.models import CardKey, CardKeyBatch, CardKeyImport, Category, ImportStatus, Product, ProductType
from catalog.services import (
    cancel_card_key_import,
    confirm_card_key_import,
    import_progress,
    start_card_key_import,
)
from kamen import crypto
from kamen.models import AuditLogEntry


@pytest.fixture(autouse=True)
def empty_queue():
    django_rq.get_queue("default").empty()
    yield
    django_rq.get_queue("default").empty()


def run_queued_jobs():
    """Run what was enqueued through the real RQ queue on Redis, in this process."""
    django_rq.get_worker("default", worker_class=SimpleWorker).work(burst=True)


def make_product(product_type=ProductType.CARD_KEY) -> Product:
    category, _ = Category.objects.get_or_create(slug="cards", defaults={"name": "点卡"})
    return Product.objects.create(
        category=category, name=f"商品{Product.objects.count()}", product_type=product_type, retail_price=Decimal("10.00")
    )


def start(product, text, actor, django_capture_on_commit_callbacks, **options):
    with django_capture_on_commit_callbacks(execute=True):
        import_job = start_card_key_import(product=product, actor=actor, text=text, **options)
    run_queued_jobs()
    import_job.refresh_from_db()
    return import_job


def confirm(import_job, actor, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        confirm_card_key_import(import_job=import_job, actor=actor)
    run_queued_jobs()
    import_job.refresh_from_db()
    return import_job


@pytest.mark.django_db
def test_preview_reports_rejections_and_saves_nothing_until_confirmed(staff_user, django_capture_on_commit_callbacks):
    product = make_product()

    import_job = start(product, "NO1,P1\nNO2\nNO1,P1\nNO3,P3", staff_user, django_capture_on_commit_callbacks)

    assert import_job.status == ImportStatus.VALIDATED
    assert (import_job.total_lines, import_job.valid_count, import_job.rejected_count) == (4, 2, 2)
    assert [entry["line"] for entry in import_job.rejected_lines] == [2, 3]
    assert CardKey.objects.count() == 0
    assert b"P1" not in bytes(import_job.payload_ciphertext)


@pytest.mark.django_db
def test_confirmed_import_stores_encrypted_keys_in_a_batch(staff_user, django_capture_on_commit_callbacks):
    product = make_product()
    import_job = start(
        product, "NO1,SECRET-ONE\nNO2,SECRET-TWO", staff_user, django_capture_on_commit_callbacks, unit_cost=Decimal("8.50")
    )

    import_job = confirm(import_job, staff_user, django_capture_on_commit_callbacks)

    assert import_job.status == ImportStatus.COMPLETED
    assert import_job.imported_count == 2
    assert bytes(import_job.payload_ciphertext) == b""
    batch = CardKeyBatch.objects.get(import_job=import_job)
    assert (batch.key_count, batch.unit_cost, batch.imported_by) == (2, Decimal("8.50"), staff_user)
    secrets = sorted(crypto.decrypt(key_id=k.key_id, blob=k.secret_ciphertext) for k in CardKey.objects.all())
    assert secrets == ["SECRET-ONE", "SECRET-TWO"]
    assert all(b"SECRET" not in bytes(k.secret_ciphertext) for k in CardKey.objects.all())
    assert import_progress(import_job=import_job)["imported"] == 2


@pytest.mark.django_db
def test_keys_already_in_stock_are_rejected_on_the_next_import(staff_user, django_capture_on_commit_callbacks):
    product = make_product()
    confirm(start(product, "NO1,P1", staff_user, django_capture_on_commit_callbacks), staff_user, django_capture_on_commit_callbacks)

    second = start(product, "NO1,P1\nNO2,P2", staff_user, django_capture_on_commit_callbacks)

    assert second.valid_count == 1
    assert second.rejected_lines == [{"line": 1, "reason": "库存中已有相同卡密"}]


@pytest.mark.django_db
def test_confirming_twice_imports_once(staff_user, django_capture_on_commit_callbacks):
    product = make_product()
    import_job = start(product, "A\nB\nC", staff_user, django_capture_on_commit_callbacks)

    confirm(import_job, staff_user, django_capture_on_commit_callbacks)
    confirm(import_job, staff_user, django_capture_on_commit_callbacks)

    assert CardKey.objects.count() == 3
    assert CardKeyBatch.objects.count() == 1


@pytest.mark.django_db
def test_a_cancelled_import_cannot_be_confirmed_and_saves_nothing(staff_user, django_capture_on_commit_callbacks):
    product = make_product()
    import_job = start(product, "A\nB", staff_user, django_capture_on_commit_callbacks)

    cancel_card_key_import(import_job=import_job, actor=staff_user)

    with pytest.raises(ValidationError, match="不能确认"):
        confirm_card_key_import(import_job=import_job, actor=staff_user)
    assert CardKey.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "options,field",
    [
        ({"text": "   \n"}, "text"),
        ({"text": "A", "input_format": "xml"}, "input_format"),
        ({"text": "A", "separator": "#"}, "separator"),
        ({"text": "A", "unit_cost": Decimal("-1")}, "unit_cost"),
    ],
)
def test_bad_requests_are_refused_and_create_nothing(staff_user, options, field):
    product = make_product()

    with pytest.raises(ValidationError) as error:
        start_card_key_import(product=product, actor=staff_user, **options)

    assert field in error.value.message_dict
    assert CardKeyImport.objects.count() == 0


@pytest.mark.django_db
def test_only_card_key_products_accept_imports(staff_user):
    product = make_product(ProductType.DIRECT_RECHARGE)

    with pytest.raises(ValidationError, match="只有卡密类商品可以导入卡密"):
        start_card_key_import(product=product, actor=staff_user, text="A")

    assert CardKeyImport.objects.count() == 0


@pytest.mark.django_db
def test_audit_rows_record_counts_never_secrets(staff_user, django_capture_on_commit_callbacks):
    product = make_product()
    confirm(start(product, "NO1,TOPSECRET", staff_user, django_capture_on_commit_callbacks), staff_user, django_capture_on_commit_callbacks)

    entries = AuditLogEntry.objects.filter(action__startswith="card_keys.")

    assert {entry.action for entry in entries} == {"card_keys.import_started", "card_keys.import_confirmed", "card_keys.imported"}
    assert all("TOPSECRET" not in str(entry.changes) for entry in entries)
