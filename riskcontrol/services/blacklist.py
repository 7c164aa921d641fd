"""Blacklist writes: add (staff, rules), remove, CSV import and export.

IP entries are networks (``10.0.0.0/8``; a single address is a /32 or /128). Contacts,
payment accounts and ID numbers are stored as a blind index with a mask, never in plaintext,
so an export cannot leak them either: it carries the mask, and an import of a masked value is
refused with a clear message.
"""

import csv
import io
import ipaddress
import re
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from distribution.selectors import user_ids_of_distributors
from kamen import crypto
from kamen.audit import record_audit
from kamen.four_eyes import require_another_person
from kamen.parsing import is_ascii_digits

from ..models import BlacklistEntry, BlacklistKind
from .signals import contact_index, mask_contact, payment_account_index

CSV_HEADER = ["kind", "value", "reason", "expires_at"]
MAX_IMPORT_ROWS = 10_000


def _normalize(kind: str, value: str) -> tuple[dict, str]:
    """(model fields, shown value) for a raw value of ``kind``, or ValidationError."""
    raw = str(value or "").strip()
    if not raw:
        raise ValidationError(_("请填写要拉黑的值"))
    if "*" in raw:
        raise ValidationError(_("不能使用打码后的值（含 *），请填写完整的值"))
    if kind == BlacklistKind.IP:
        try:
            network = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise ValidationError(
                _("“%(value)s”不是有效的 IP 地址或网段（如 10.0.0.0/8）")
                % {"value": raw[:60]}
            ) from None
        return {
            "network": str(network.network_address),
            "prefix_length": network.prefixlen,
        }, str(network)
    if kind == BlacklistKind.DEVICE:
        if not re.fullmatch(r"[0-9a-fA-F]{8,64}", raw):
            raise ValidationError(_("设备标识应为 8–64 位十六进制字符"))
        return {"value_index": raw.lower()}, raw.lower()
    if kind == BlacklistKind.CONTACT:
        return {"value_index": contact_index(raw)}, mask_contact(raw)
    if kind == BlacklistKind.PAYMENT_ACCOUNT:
        compact = re.sub(r"\s+", "", raw)
        return {"value_index": payment_account_index(compact)}, (
            f"{compact[:3]}****{compact[-4:]}" if len(compact) >= 8 else "****"
        )
    if kind == BlacklistKind.ID_NUMBER:
        from ..validators import mask_id_number, validate_id_number

        number = validate_id_number(raw, check_age=False)
        return {"value_index": id_number_index(number)}, mask_id_number(number)
    if kind == BlacklistKind.DISTRIBUTOR:
        if not is_ascii_digits(raw):
            raise ValidationError(_("分销商请填写其编号（数字）"))
        return {"value_index": str(int(raw))}, f"#{int(raw)}"
    raise ValidationError(_("不支持的黑名单类型：%(kind)s") % {"kind": kind[:30]})


def id_number_index(number: str) -> str:
    return crypto.blind_index("id-number:" + number.upper())


def add_to_blacklist(
    *,
    kind: str,
    value: str,
    reason: str,
    actor,
    expires_at: datetime | None = None,
    request=None,
) -> BlacklistEntry:
    """Add an entry (or return the active one for the same value, extending its expiry)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("请填写拉黑原因"))
    fields, shown = _normalize(kind, value)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError(_("过期时间必须晚于现在"))
    with transaction.atomic():
        existing = (
            BlacklistEntry.objects.select_for_update()
            .filter(kind=kind, **fields)
            .exclude(expires_at__lte=timezone.now())
            .first()
        )
        if existing is not None:
            if existing.expires_at is not None and (
                expires_at is None or expires_at > existing.expires_at
            ):
                existing.expires_at = expires_at
                existing.save(update_fields=["expires_at"])
            return existing
        entry = BlacklistEntry.objects.create(
            kind=kind,
            display_value=shown[:64],
            reason=reason[:200],
            expires_at=expires_at,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            **fields,
        )
        if getattr(actor, "is_authenticated", False):
            record_audit(
                actor=actor,
                action="riskcontrol.blacklisted",
                target=entry,
                changes={
                    "kind": [None, kind],
                    "value": [None, shown],
                    "reason": [None, reason[:200]],
                },
                request=request,
            )
    return entry


def remove_from_blacklist(*, entry: BlacklistEntry, actor, request=None) -> None:
    """Lift an entry. Four eyes: nobody lifts one about their own distributor account."""
    if entry.kind == BlacklistKind.DISTRIBUTOR and entry.value_index.isdigit():
        own = user_ids_of_distributors([int(entry.value_index)])
        require_another_person(actor=actor, subject_user_ids=own, what=_("解除黑名单"))
    with transaction.atomic():
        record_audit(
            actor=actor,
            action="riskcontrol.unblacklisted",
            target=entry,
            request=request,
        )
        BlacklistEntry.objects.filter(pk=entry.pk).delete()


def export_blacklist_csv(queryset=None) -> str:
    """Active and expired entries as CSV; secret values appear as their masks only."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    for entry in (
        queryset if queryset is not None else BlacklistEntry.objects.order_by("id")
    ):
        writer.writerow(
            [
                entry.kind,
                _csv_safe(entry.display_value),
                _csv_safe(entry.reason),
                timezone.localtime(entry.expires_at).isoformat()
                if entry.expires_at
                else "",
            ]
        )
    return buffer.getvalue()


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas (=, +, -, @) in exported text."""
    value = str(value or "")
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _parse_expiry(raw: str):
    raw = (raw or "").strip()
    if not raw:
        return None
    moment = parse_datetime(raw)
    if moment is None:
        day = parse_date(raw)
        if day is None:
            raise ValidationError(
                _("过期时间“%(value)s”格式不正确（如 2026-12-31 或 2026-12-31T23:59）")
                % {"value": raw[:40]}
            )
        moment = datetime(day.year, day.month, day.day, 23, 59, 59)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def import_blacklist_csv(
    *, content: bytes | str, actor, request=None
) -> tuple[int, list[str]]:
    """All or nothing: every row valid, then every row added. Returns (rows added, errors);
    with errors nothing is added. Columns: kind, value, reason, expires_at (optional)."""
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            return 0, [_("文件须为 UTF-8 编码的 CSV")]
    rows = list(csv.reader(io.StringIO(content)))
    if rows and [cell.strip().lower() for cell in rows[0][:2]] == ["kind", "value"]:
        rows = rows[1:]
    if not rows:
        return 0, [_("文件中没有数据行")]
    if len(rows) > MAX_IMPORT_ROWS:
        return 0, [_("一次最多导入 %(max)s 行") % {"max": MAX_IMPORT_ROWS}]
    errors: list[str] = []
    parsed = []
    for number, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row] + ["", "", "", ""]
        kind, value, reason, expiry = cells[:4]
        try:
            if kind not in BlacklistKind.values:
                raise ValidationError(
                    _("类型“%(kind)s”无效，可用：%(kinds)s")
                    % {"kind": kind[:20], "kinds": ", ".join(BlacklistKind.values)}
                )
            _normalize(kind, value)
            expires_at = _parse_expiry(expiry)
            if expires_at is not None and expires_at <= timezone.now():
                raise ValidationError(_("过期时间必须晚于现在"))
        except ValidationError as error:
            errors.append(
                _("第 %(line)s 行：%(message)s")
                % {"line": number, "message": "；".join(error.messages)}
            )
            continue
        parsed.append((kind, value, reason or _("批量导入"), expires_at))
    if errors:
        return 0, errors
    with transaction.atomic():
        for kind, value, reason, expires_at in parsed:
            add_to_blacklist(
                kind=kind,
                value=value,
                reason=reason,
                actor=actor,
                expires_at=expires_at,
                request=request,
            )
    return len(parsed), []


def first_blacklist_match(*, values: Q, ip: str | None, now) -> BlacklistEntry | None:
    """The first active entry among ``values`` or whose network contains ``ip`` (inet
    containment, ``<<=``, in the same query)."""
    active = BlacklistEntry.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    ).only("kind", "display_value", "reason", "network", "prefix_length")
    if ip:
        ip_hit = RawSQL(
            "(kind = 'ip' AND %s::inet <<= set_masklen(network, prefix_length))",
            [ip],
            output_field=BooleanField(),
        )
        return active.annotate(ip_hit=ip_hit).filter(values | Q(ip_hit=True)).first()
    return active.filter(values).first() if values else None
