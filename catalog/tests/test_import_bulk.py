"""Large imports on PostgreSQL: COPY, the validated payload, and the duplicate check at write time."""

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from catalog.models import (
    CardKey,
    CardKeyBatch,
    CardKeyImport,
    Category,
    ImportStatus,
    Product,
    ProductType,
)
from catalog.services import (
    confirm_card_key_import,
    import_progress,
    run_card_key_import,
    start_card_key_import,
    validate_card_key_import,
    vault,
)
from kamen import crypto

ALREADY_IN_STOCK = "库存中已有相同卡密"


def make_product(name="Steam 50") -> Product:
    category, _ = Category.objects.get_or_create(slug="cards", defaults={"name": "点卡"})
    return Product.objects.create(category=category, name=name, product_type=ProductType.CARD_KEY, retail_price=Decimal("48.00"))


def validated(product, text, actor) -> CardKeyImport:
    """Start and validate an import; the jobs are called directly, as the RQ worker would."""
    import_job = start_card_key_import(product=product, actor=actor, text=text, separator=",")
    validate_card_key_import(import_id=import_job.pk)
    import_job.refresh_from_db()
    return import_job


def imported(import_job, actor) -> CardKeyImport:
    confirm_card_key_import(import_job=import_job, actor=actor)
    run_card_key_import(import_id=import_job.pk)
    import_job.refresh_from_db()
    return import_job


def stored_secrets(product) -> dict[str, str]:
    return {
        key.card_no: crypto.decrypt(key_id=key.key_id, blob=key.secret_ciphertext)
        for key in CardKey.objects.filter(product=product)
    }


@pytest.mark.django_db
def test_a_20k_line_import_stores_exactly_the_valid_keys_encrypted(staff_user):
    product = make_product()
    earlier = validated(product, "\n".join(f"NO{n:05d},SECRET-{n:05d}" for n in range(0, 20_000, 1_000)), staff_user)
    imported(earlier, staff_user)  # 20 of the lines below are already in stock
    lines = [f"NO{n:05d},SECRET-{n:05d},2099-12-31" for n in range(20_000)]
    lines[5] = "NO-BROKEN"  # one field only
    lines[7] = lines[6]  # repeated within the file
    lines[9] = "NO00009,SECRET\\WITH\\BACKSLASHES"  # COPY's escape character
    expected = {f"NO{n:05d}": f"SECRET-{n:05d}" for n in range(20_000) if n % 1_000 and n not in (5, 7)}
    expected["NO00009"] = "SECRET\\WITH\\BACKSLASHES"

    import_job = imported(validated(product, "\n".join(lines), staff_user), staff_user)

    assert import_job.status == ImportStatus.COMPLETED
    assert import_job.imported_count == len(expected) == 19_978
    assert import_job.rejected_count == 22
    assert sum(entry["reason"] == ALREADY_IN_STOCK for entry in import_job.rejected_lines) == 20
    batch = CardKeyBatch.objects.get(import_job=import_job)
    assert batch.key_count == CardKey.objects.filter(batch=batch).count() == len(expected)
    secrets = stored_secrets(product)
    assert {card_no: secrets[card_no] for card_no in expected} == expected
    assert CardKey.objects.filter(product=product).count() == len(expected) + 20  # no duplicates
    key = CardKey.objects.get(card_no="NO00001")
    assert b"SECRET" not in bytes(key.secret_ciphertext)
    assert key.fingerprint == crypto.blind_index("NO00001\x00SECRET-00001")
    assert key.expires_at.year == 2099 and key.status == "available"
    assert import_progress(import_job=import_job)["done"] == import_progress(import_job=import_job)["total"] == len(expected)
    assert bytes(import_job.payload_ciphertext) == b""


@pytest.mark.django_db
def test_keys_that_reached_stock_after_validation_are_rejected_on_import(staff_user):
    product = make_product()
    first = validated(product, "NO1,P1\nNO2,P2\nNO3,P3", staff_user)
    imported(validated(product, "NO2,P2\nNO9,P9", staff_user), staff_user)  # confirmed in between

    first = imported(first, staff_user)

    assert first.status == ImportStatus.COMPLETED
    assert first.imported_count == 2
    assert first.rejected_lines == [{"line": 2, "reason": ALREADY_IN_STOCK}]
    assert sorted(stored_secrets(product).items()) == [("NO1", "P1"), ("NO2", "P2"), ("NO3", "P3"), ("NO9", "P9")]


@pytest.mark.django_db
def test_an_import_the_database_still_refuses_fails_whole_and_says_why(staff_user, monkeypatch):
    product = make_product()
    import_job = validated(product, "NO1,P1\nNO2,P2", staff_user)
    imported(validated(product, "NO2,P2", staff_user), staff_user)
    monkeypatch.setattr(vault, "_existing_fingerprints", lambda fingerprints: set())  # the re-check sees nothing

    import_job = imported(import_job, staff_user)

    assert import_job.status == ImportStatus.FAILED
    assert "未保存任何卡密" in import_job.error_message
    assert CardKey.objects.filter(card_no="NO1").count() == 0
    assert not CardKeyBatch.objects.filter(import_job=import_job).exists()
    assert bytes(import_job.payload_ciphertext) == b""


@pytest.mark.django_db
def test_an_import_validated_before_validated_payloads_existed_still_imports(staff_user):
    product = make_product()
    key_id, blob = crypto.encrypt("NO1,P1\nNO1,P1\nNO2,P2", associated_data=vault.PAYLOAD_CONTEXT)
    import_job = CardKeyImport.objects.create(
        product=product, created_by=staff_user, separator=",", payload_ciphertext=blob, payload_key_id=key_id,
        status=ImportStatus.IMPORTING, confirmed_by=staff_user,
    )

    run_card_key_import(import_id=import_job.pk)

    import_job.refresh_from_db()
    assert (import_job.status, import_job.imported_count, import_job.rejected_count) == (ImportStatus.COMPLETED, 2, 1)
    assert sorted(stored_secrets(product).items()) == [("NO1", "P1"), ("NO2", "P2")]


@pytest.mark.django_db
def test_text_that_is_not_text_is_refused(staff_user):
    with pytest.raises(ValidationError, match="二进制"):
        start_card_key_import(product=make_product(), actor=staff_user, text="\x00kamen-validated-keys:1\n1\tx\t\t\tS")

    assert CardKeyImport.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_two_imports_of_overlapping_keys_at_once_store_each_key_once(staff_user):
    product = make_product()
    first = validated(product, "\n".join(f"NO{n:05d},S{n:05d}" for n in range(3_000)), staff_user)
    second = validated(product, "\n".join(f"NO{n:05d},S{n:05d}" for n in range(2_000, 5_000)), staff_user)
    for import_job in (first, second):
        confirm_card_key_import(import_job=import_job, actor=staff_user)
    barrier = threading.Barrier(2)

    def run(import_job):
        barrier.wait()
        try:
            run_card_key_import(import_id=import_job.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(import_job,)) for import_job in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (ImportStatus.COMPLETED, ImportStatus.COMPLETED)
    assert first.rejected_count + second.rejected_count == 1_000  # the later one refused what the other had stored
    assert first.imported_count + second.imported_count == CardKey.objects.count() == 5_000
    assert CardKey.objects.values("fingerprint").distinct().count() == 5_000
