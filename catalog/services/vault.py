"""Bulk card-key import: validate first, save only after the merchant confirms.

The raw text is kept encrypted on the import row until validation, which replaces it with the
validated keys (fingerprints included, still encrypted) so the confirmed import neither parses
nor hashes a second time; the payload is wiped when the import ends. Keys are written in one
transaction (all or nothing) with one streamed COPY, the unique fingerprint index
catching whatever reached stock since validation; progress is published through the cache so
the console can show it while that transaction is open.
"""

from decimal import Decimal
from typing import NamedTuple

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog import sql as catalog_sql
from catalog.importing import FORMATS, SEPARATORS, ParsedKey, parse_card_key_lines
from catalog.models import (
    CardKey,
    CardKeyBatch,
    CardKeyImport,
    CardKeyStatus,
    ImportStatus,
    Product,
    ProductType,
)
from catalog.signals import card_keys_imported
from kamen import crypto
from kamen.audit import record_audit
from kamen.background import enqueue_bulk_job

from .stock import check_stock_level

__all__ = [
    "cancel_card_key_import",
    "confirm_card_key_import",
    "import_progress",
    "run_card_key_import",
    "start_card_key_import",
    "validate_card_key_import",
]

PAYLOAD_CONTEXT = b"catalog.card_key_import"
CHUNK = 5_000
REJECTED_LINES_KEPT = 1_000


def _progress_key(import_id: int) -> str:
    return f"card_key_import:{import_id}:progress"


def _publish_progress(import_id: int, done: int, total: int) -> None:
    cache.set(_progress_key(import_id), {"done": done, "total": total}, timeout=3600)


def import_progress(*, import_job: CardKeyImport) -> dict:
    """What the console's progress bar shows."""
    live = cache.get(_progress_key(import_job.pk)) or {}
    return {
        "status": import_job.status,
        "done": live.get("done", import_job.progress_done),
        "total": live.get("total", import_job.progress_total),
        "valid": import_job.valid_count,
        "rejected": import_job.rejected_count,
        "imported": import_job.imported_count,
        "error": import_job.error_message,
    }


def start_card_key_import(
    *,
    product: Product,
    actor,
    text: str,
    source_name: str = "",
    input_format: str = "auto",
    separator: str = "",
    supplier=None,
    unit_cost: Decimal | None = None,
    default_expires_at=None,
) -> CardKeyImport:
    errors = {}
    if product.product_type != ProductType.CARD_KEY:
        errors["product"] = _("只有卡密类商品可以导入卡密（“%(name)s”是%(type)s）") % {
            "name": product.name,
            "type": product.get_product_type_display(),
        }
    if input_format not in FORMATS:
        errors["input_format"] = _("未知的导入格式：%(format)s") % {"format": input_format}
    if separator and separator not in SEPARATORS:
        errors["separator"] = _("不支持的分隔符：%(separator)s") % {"separator": separator}
    if unit_cost is not None and unit_cost < 0:
        errors["unit_cost"] = _("成本不能为负数")
    if not text.strip():
        errors["text"] = _("没有可导入的内容")
    elif "\x00" in text:
        errors["text"] = _("这不是文本（包含二进制内容）")
    if errors:
        raise ValidationError(errors)
    key_id, blob = crypto.encrypt(text, associated_data=PAYLOAD_CONTEXT)
    with transaction.atomic():
        import_job = CardKeyImport.objects.create(
            product=product,
            created_by=actor,
            source_name=source_name[:200],
            input_format=input_format,
            separator=separator,
            supplier=supplier,
            unit_cost=unit_cost,
            default_expires_at=default_expires_at,
            payload_ciphertext=blob,
            payload_key_id=key_id,
        )
        record_audit(actor=actor, action="card_keys.import_started", target=import_job, changes={"source": str(source_name)})
        enqueue_bulk_job(validate_card_key_import, import_id=import_job.pk)
    return import_job


class ImportConflict(Exception):
    """The database refused the keys even after the re-check: nothing of the import is kept."""


class ValidKey(NamedTuple):
    """A key that passed validation, as kept (encrypted) between preview and confirmation.

    Plain strings, so the confirmed import neither parses the text nor computes a blind index
    a second time, and writes each field straight into COPY. Between the two passes a key
    travels as a *row*: these fields joined by tabs (a valid key holds no control character),
    split again only when its chunk is written.
    """

    line_no: str
    fingerprint: str
    expires_at: str  # ISO 8601 with offset, "" when the key does not expire
    card_no: str
    secret: str


# Marks a payload that holds validated keys (one row a line, see ValidKey) rather than the
# merchant's raw text; raw text cannot start with it (start_card_key_import refuses NUL).
VALIDATED_MARKER = "\x00kamen-validated-keys:1\n"


def _parse(import_job: CardKeyImport):
    text = crypto.decrypt(
        key_id=import_job.payload_key_id, blob=import_job.payload_ciphertext, associated_data=PAYLOAD_CONTEXT
    )
    return parse_card_key_lines(
        text,
        input_format=import_job.input_format,
        separator=import_job.separator or None,
        default_expires_at=import_job.default_expires_at,
    )


def _existing_fingerprints(fingerprints: list[str]) -> set[str]:
    """Which of these fingerprints are already in stock (committed), exactly, via the unique index."""
    if not fingerprints:
        return set()
    # One round trip: the list travels as one string, not 100,000 bind parameters.
    with connection.cursor() as cursor:
        cursor.execute(
            catalog_sql.EXISTING_FINGERPRINTS,
            [",".join(fingerprints)],
        )
        return {row[0] for row in cursor.fetchall()}


def _split_against_stock(keys: list[ParsedKey]) -> tuple[list[str], list[tuple[int, str]]]:
    """The keys not yet in stock, as ValidKey rows, and the lines of those that are."""
    identities = [f"{card_no}\x00{secret}" for _line, card_no, secret, _expiry in keys]  # ParsedKey.identity
    fingerprints = crypto.blind_index_many(identities)
    existing = _existing_fingerprints(fingerprints)
    fresh = [
        f"{line_no}\t{fingerprint}\t{expires_at.isoformat() if expires_at else ''}\t{card_no}\t{secret}"
        for (line_no, card_no, secret, expires_at), fingerprint in zip(keys, fingerprints)
        if fingerprint not in existing
    ]
    if not existing:
        return fresh, []
    duplicates = [(key.line_no, _("库存中已有相同卡密")) for key, fingerprint in zip(keys, fingerprints) if fingerprint in existing]
    return fresh, duplicates


def _seal_valid_keys(rows: list[str]) -> tuple[str, bytes]:
    return crypto.encrypt(VALIDATED_MARKER + "\n".join(rows), associated_data=PAYLOAD_CONTEXT)


def _row_fields(row: str) -> ValidKey:
    return ValidKey._make(row.split("\t", 4))


def _valid_keys(import_job: CardKeyImport) -> tuple[list[str], list[tuple[int, str]], int]:
    """The keys validation kept (ValidKey rows), the rejected lines it reported (as kept on the
    import) and how many it rejected. A payload from before validated payloads existed is
    validated again here."""
    text = crypto.decrypt(
        key_id=import_job.payload_key_id, blob=import_job.payload_ciphertext, associated_data=PAYLOAD_CONTEXT
    )
    if not text.startswith(VALIDATED_MARKER):
        result = _parse(import_job)
        fresh, duplicates = _split_against_stock(result.keys)
        return fresh, result.rejected + duplicates, len(result.rejected) + len(duplicates)
    body = text[len(VALIDATED_MARKER) :]
    fresh = body.split("\n") if body else []
    rejected = [(entry["line"], entry["reason"]) for entry in import_job.rejected_lines]
    return fresh, rejected, import_job.rejected_count


def validate_card_key_import(*, import_id: int) -> None:
    """Background job: parse, check against stock, and wait for the merchant's confirmation."""
    import_job = CardKeyImport.objects.get(pk=import_id)
    if import_job.status != ImportStatus.VALIDATING:
        return
    try:
        result = _parse(import_job)
        fresh, duplicates = _split_against_stock(result.keys)
    except Exception as error:  # the job must end in a state the merchant can see
        CardKeyImport.objects.filter(pk=import_id).update(
            status=ImportStatus.FAILED, error_message=_("校验失败：%(error)s") % {"error": type(error).__name__}
        )
        raise
    rejected = sorted(result.rejected + duplicates)
    payload_key_id, payload = _seal_valid_keys(fresh)
    CardKeyImport.objects.filter(pk=import_id, status=ImportStatus.VALIDATING).update(
        status=ImportStatus.VALIDATED,
        payload_ciphertext=payload,
        payload_key_id=payload_key_id,
        total_lines=result.total_lines,
        valid_count=len(fresh),
        rejected_count=len(rejected),
        rejected_lines=[{"line": line_no, "reason": reason} for line_no, reason in rejected[:REJECTED_LINES_KEPT]],
        progress_total=len(fresh),
        progress_done=0,
    )


def confirm_card_key_import(*, import_job: CardKeyImport, actor) -> CardKeyImport:
    """Start saving the keys. Confirming twice saves them once."""
    with transaction.atomic():
        locked = CardKeyImport.objects.select_for_update().defer("payload_ciphertext").get(pk=import_job.pk)
        if locked.status in {ImportStatus.IMPORTING, ImportStatus.COMPLETED}:
            return locked
        if locked.status != ImportStatus.VALIDATED:
            raise ValidationError(_("此导入当前状态为“%(status)s”，不能确认") % {"status": locked.get_status_display()})
        if locked.valid_count == 0:
            raise ValidationError(_("没有可导入的有效卡密"))
        locked.status = ImportStatus.IMPORTING
        locked.confirmed_by = actor
        locked.confirmed_at = timezone.now()
        locked.save(update_fields=["status", "confirmed_by", "confirmed_at"])
        record_audit(actor=actor, action="card_keys.import_confirmed", target=locked, changes={"valid": locked.valid_count})
        enqueue_bulk_job(run_card_key_import, import_id=locked.pk)
    return locked


def cancel_card_key_import(*, import_job: CardKeyImport, actor) -> CardKeyImport:
    with transaction.atomic():
        locked = CardKeyImport.objects.select_for_update().defer("payload_ciphertext").get(pk=import_job.pk)
        if locked.status not in {ImportStatus.VALIDATING, ImportStatus.VALIDATED}:
            raise ValidationError(_("此导入当前状态为“%(status)s”，不能取消") % {"status": locked.get_status_display()})
        locked.status = ImportStatus.CANCELLED
        locked.payload_ciphertext = b""
        locked.save(update_fields=["status", "payload_ciphertext"])
        record_audit(actor=actor, action="card_keys.import_cancelled", target=locked)
    return locked


COPY_COLUMNS = ("product_id", "batch_id", "card_no", "secret_ciphertext", "key_id", "fingerprint", "expires_at", "status",
                "created_at")  # fmt: skip
NULL = "\\N"


def _copy_text(value: str) -> str:
    """A field for COPY's text format. Validated keys hold no control characters, so only the
    backslash needs escaping."""
    return value.replace("\\", "\\\\") if "\\" in value else value


class _CopySource:
    """What COPY reads: each ``read`` splits, encrypts and formats the next chunk of rows and
    publishes progress, so Python prepares chunk n+1 while PostgreSQL is still writing chunk n."""

    def __init__(self, import_job: CardKeyImport, batch: CardKeyBatch, rows: list[str], now):
        self.import_id = import_job.pk
        self.keys = rows
        self.position = 0
        self.head = f"{import_job.product_id}\t{batch.pk}\t"
        self.tail = f"\t{CardKeyStatus.AVAILABLE}\t{now.isoformat()}\n"

    def read(self, size: int = -1) -> str:
        rows = self.keys[self.position : self.position + CHUNK]
        if not rows:
            return ""
        self.position += len(rows)
        chunk = [row.split("\t", 4) for row in rows]  # ValidKey fields
        key_id, blobs = crypto.encrypt_many([fields[4] for fields in chunk])
        head, tail, middle = self.head, self.tail, f"\t{_copy_text(key_id)}\t"
        text = "".join(
            [
                f"{head}{_copy_text(card_no)}\t\\\\x{blob.hex()}{middle}{fingerprint}\t{expires_at or NULL}{tail}"
                for (_line, fingerprint, expires_at, card_no, _secret), blob in zip(chunk, blobs)
            ]
        )
        _publish_progress(self.import_id, self.position, len(self.keys))
        return text


def _write_keys(import_job: CardKeyImport, batch: CardKeyBatch, rows: list[str], now) -> None:
    """Encrypt and write keys: one streamed COPY (bytea as hex)."""
    from psycopg import sql
    from psycopg.copy import QueuedLibpqWriter

    statement = sql.SQL("COPY {table} ({columns}) FROM STDIN").format(
        table=sql.Identifier(CardKey._meta.db_table), columns=sql.SQL(", ").join(map(sql.Identifier, COPY_COLUMNS))
    )
    source = _CopySource(import_job, batch, rows, now)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        # The queued writer sends from a thread of its own: the next chunk is encrypted here
        # while PostgreSQL is still writing the last one.
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor.cursor)) as copy:
            while chunk := source.read():
                copy.write(chunk)


def _is_write_conflict(error: Exception) -> bool:
    """A unique violation, or two imports of the same keys deadlocking on the unique index."""
    return isinstance(error, IntegrityError) or getattr(error.__cause__, "pgcode", None) == "40P01"


def _insert_keys(import_job: CardKeyImport, batch: CardKeyBatch, fresh: list[str]) -> list[tuple[int, str]]:
    """Write every key, all or nothing, and return the lines refused as already in stock.

    The unique fingerprint index is the duplicate check here: if it refuses the write (keys that
    reached stock after validation), the write is rolled back to its savepoint, the keys are
    re-checked exactly, and written again without those lines, which are rejected. Refused a
    second time (another import committing the same keys at that very moment), the import
    raises ImportConflict and keeps nothing.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            _write_keys(import_job, batch, fresh, now)
        return []
    except (IntegrityError, OperationalError) as error:
        if not _is_write_conflict(error):
            raise
        conflict = error
    keys = [_row_fields(row) for row in fresh]
    existing = _existing_fingerprints([key.fingerprint for key in keys])
    if not existing:
        raise ImportConflict(_("数据库拒绝写入这批卡密，本次导入未保存任何卡密，请重新导入")) from conflict
    try:
        with transaction.atomic():
            remaining = [row for row, key in zip(fresh, keys) if key.fingerprint not in existing]
            _write_keys(import_job, batch, remaining, now)
    except (IntegrityError, OperationalError) as error:
        if not _is_write_conflict(error):
            raise
        raise ImportConflict(
            _("另一个导入正在同时写入相同的卡密，本次导入未保存任何卡密；请重新导入，重复的行会被拒绝")
        ) from error
    return [(int(key.line_no), _("库存中已有相同卡密")) for key in keys if key.fingerprint in existing]


def run_card_key_import(*, import_id: int) -> None:
    """Background job: encrypt and save every valid key of a confirmed import, all or nothing."""
    with transaction.atomic():
        import_job = CardKeyImport.objects.select_for_update().get(pk=import_id)
        if import_job.status != ImportStatus.IMPORTING:
            return
        fresh, rejected, rejected_count = _valid_keys(import_job)
        batch = CardKeyBatch.objects.create(
            product_id=import_job.product_id,
            supplier_id=import_job.supplier_id,
            import_job=import_job,
            unit_cost=import_job.unit_cost,
            imported_by_id=import_job.confirmed_by_id,
            note=import_job.source_name[:200],
        )
        try:
            duplicates = _insert_keys(import_job, batch, fresh)
        except ImportConflict as conflict:
            batch.delete()
            import_job.status = ImportStatus.FAILED
            import_job.error_message = str(conflict)
            import_job.payload_ciphertext = b""
            import_job.finished_at = timezone.now()
            import_job.save(update_fields=["status", "error_message", "payload_ciphertext", "finished_at"])
            record_audit(actor=import_job.confirmed_by, action="card_keys.import_failed", target=import_job)
            return
        imported = CardKey.objects.filter(batch=batch).count()
        batch.key_count = imported
        batch.save(update_fields=["key_count"])
        rejected = sorted(rejected + duplicates)
        import_job.status = ImportStatus.COMPLETED
        import_job.imported_count = imported
        import_job.rejected_count = rejected_count + len(duplicates)
        import_job.rejected_lines = [{"line": n, "reason": r} for n, r in rejected[:REJECTED_LINES_KEPT]]
        import_job.progress_total = import_job.progress_done = len(fresh)
        import_job.payload_ciphertext = b""
        import_job.finished_at = timezone.now()
        import_job.save()
        record_audit(
            actor=import_job.confirmed_by,
            action="card_keys.imported",
            target=import_job,
            changes={"imported": imported, "rejected": import_job.rejected_count, "batch": batch.pk},
        )
        transaction.on_commit(lambda: card_keys_imported.send(sender=CardKey, product=import_job.product, count=imported))
    check_stock_level(product=import_job.product)  # after commit: an open low-stock alert resolves at once
