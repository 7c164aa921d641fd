"""The month's withholding for filing (个人所得税扣缴申报): one CSV line per distributor paid in
the month, with the name and ID number the tax office files it under. The ID numbers leave the
vault only here, for a user holding ``commissions.export_withholding``, and every export is
written to the audit log."""

import csv
import io
from datetime import date

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext as _

from kamen.audit import record_audit

from .. import selectors

HEADER = ["月份", "分销商ID", "姓名", "证件类型", "证件号码", "所得项目", "收入额", "已扣缴税额", "提现笔数"]


def parse_month(raw) -> date:
    """``YYYY-MM`` → the month's first day; anything else is a clear error."""
    text = str(raw or "").strip()
    try:
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2 or not (year + month).isdigit() or not year.isascii():
            raise ValueError
        return date(int(year), int(month), 1)
    except ValueError:
        raise ValidationError(_("月份格式应为 YYYY-MM，例如 2026-11")) from None


def export_month_withholding(*, month: date, actor, request=None) -> str:
    if actor is None or not actor.has_perm("commissions.export_withholding"):
        raise PermissionDenied(_("没有导出个税扣缴明细的权限"))
    from riskcontrol.selectors import real_names_for_filing

    rows = selectors.month_withholding(month=month)
    names = real_names_for_filing(distributor_ids=[row["distributor_id"] for row in rows])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for row in rows:
        name, id_number = names.get(row["distributor_id"], ("", ""))
        writer.writerow(
            [
                month.strftime("%Y-%m"),
                row["distributor_id"],
                _safe(name),
                "居民身份证",
                _safe(id_number),
                "劳务报酬所得",
                row["income"],
                row["tax"],
                row["withdrawals"],
            ]
        )
    record_audit(
        actor=actor,
        action="commissions.withholding_exported",
        changes={"month": [None, month.strftime("%Y-%m")], "lines": [None, len(rows)]},
        request=request,
        target_repr=month.strftime("%Y-%m"),
    )
    return buffer.getvalue()


def _safe(text: str) -> str:
    """A spreadsheet never runs a cell as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
