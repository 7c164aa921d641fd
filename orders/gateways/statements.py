"""The gateways' daily statements (对账单), read into one shape for reconciliation.

Two documented formats:

* **Alipay** — the trade bill (``alipay.data.dataservice.bill.downloadurl.query``,
  ``bill_type=trade``): a zip holding ``…_业务明细.csv`` (and a ``…(汇总).csv`` summary), GBK
  text. ``#`` lines frame the table; its header starts with ``支付宝交易号``; every value may
  carry trailing tabs and spaces. A row's ``业务类型`` is ``交易`` (a payment) or ``退款`` (a
  refund, its ``退款批次号/请求号`` our refund number); ``订单金额（元）`` is the amount (negative
  for a refund), ``服务费（元）`` the fee charged (a payment) or returned (a refund), whatever its
  sign.
* **WeChat Pay** — the trade bill (``GET /v3/bill/tradebill``, ``bill_type=ALL``): UTF-8 text;
  the header starts with ``交易时间``, every value is prefixed with a backquote, and the table
  ends at the summary header ``总交易单数``. ``交易状态`` ``SUCCESS`` is a payment
  (``订单金额``, else ``应结订单金额``), ``REFUND`` a refund (``退款金额``, ``商户退款单号``);
  ``手续费`` the fee charged or returned (negative on a refund).

Anything else — another file, a header without the columns we read, an amount that is not one —
raises ``StatementFormatError`` saying what is wrong, before anything is matched or stored.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = [
    "ALIPAY",
    "WECHATPAY",
    "StatementFormatError",
    "StatementLine",
    "alipay_statement",
    "parse_statement",
    "wechatpay_statement",
]

ALIPAY = "alipay"
WECHATPAY = "wechatpay"
FEN = Decimal("0.01")


class StatementFormatError(ValueError):
    """The file is not a statement in the format named: nothing was matched or stored."""


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One payment or refund as the gateway reports it. Amounts are positive: ``amount`` what
    was paid or refunded, ``fee`` the fee charged on a payment or returned with a refund."""

    is_refund: bool
    out_trade_no: str
    out_refund_no: str
    gateway_trade_no: str
    amount: Decimal
    fee: Decimal


def parse_statement(content: bytes, *, statement_format: str) -> list[StatementLine]:
    if statement_format == ALIPAY:
        return parse_alipay(content)
    if statement_format == WECHATPAY:
        return parse_wechatpay(content)
    raise StatementFormatError(f"unknown statement format {statement_format!r}")


# --- Alipay ---------------------------------------------------------------------------------------
ALIPAY_COLUMNS = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
)
_ALIPAY_NEEDED = ("支付宝交易号", "商户订单号", "业务类型", "订单金额（元）", "退款批次号/请求号", "服务费（元）")


def parse_alipay(content: bytes) -> list[StatementLine]:
    text = _decode(_alipay_detail_file(content), "gb18030")
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if line.lstrip("\ufeff").startswith("支付宝交易号")), None)
    if start is None:
        raise StatementFormatError("not an Alipay trade statement: no header line starting with 支付宝交易号")
    table = []
    for line in lines[start:]:
        if line.startswith("#"):
            break
        if line.strip():
            table.append(line)
    rows = csv.reader(table)
    header = [cell.strip().lstrip("\ufeff") for cell in next(rows)]
    where = _columns(header, _ALIPAY_NEEDED, "Alipay")
    parsed = []
    width = len(header)
    kind_at, order_at, refund_at = where["业务类型"], where["商户订单号"], where["退款批次号/请求号"]
    trade_at, amount_at, fee_at = where["支付宝交易号"], where["订单金额（元）"], where["服务费（元）"]
    for number, cells in enumerate(rows, start=start + 2):
        if len(cells) < width:
            raise StatementFormatError(f"Alipay statement line {number}: {len(cells)} values, the header has {width}")
        kind = cells[kind_at].strip()
        if kind not in ("交易", "退款"):
            continue  # 分账, 转账 …: not a payment or refund of an order
        is_refund = kind == "退款"
        parsed.append(
            StatementLine(
                is_refund,
                cells[order_at].strip(),
                cells[refund_at].strip() if is_refund else "",
                cells[trade_at].strip(),
                abs(_amount(cells[amount_at], number, "订单金额（元）")),
                abs(_amount(cells[fee_at], number, "服务费（元）")),
            )
        )
    return parsed


def _alipay_detail_file(content: bytes) -> bytes:
    """The detail CSV: the zip's ``…业务明细.csv`` (not the summary), or the content itself."""
    if not content.startswith(b"PK"):
        return content
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = [name for name in archive.namelist() if name.lower().endswith(".csv")]
            detail = [name for name in names if "汇总" not in _zip_name(name)]
            if not detail:
                raise StatementFormatError("the Alipay statement archive holds no detail CSV file")
            return archive.read(detail[0])
    except zipfile.BadZipFile:
        raise StatementFormatError("the Alipay statement archive is damaged") from None


def _zip_name(name: str) -> str:
    try:  # zip names without the UTF-8 flag come back as cp437; Alipay writes GBK
        return name.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


def alipay_statement(lines: list[StatementLine], *, account: str = "2088000000000000", day: str = "") -> bytes:
    """A statement in Alipay's trade-bill format (GBK CSV), as the sandbox serves it."""
    out = io.StringIO()
    out.write("#支付宝业务明细查询\n")
    out.write(f"#账号：[{account}]\n")
    out.write(f"#起始日期：[{day} 00:00:00]   终止日期：[{day} 23:59:59]\n")
    out.write("#-----------------------------------------业务明细列表----------------------------------------\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ALIPAY_COLUMNS)
    payments = refunds = 0
    for line in lines:
        sign = "-" if line.is_refund else ""
        fee = f"{line.fee:.2f}" if line.is_refund else f"-{line.fee:.2f}" if line.fee else "0.00"
        row = [""] * len(ALIPAY_COLUMNS)
        row[0] = f"{line.gateway_trade_no}\t"
        row[1] = f"{line.out_trade_no}\t"
        row[2] = "退款" if line.is_refund else "交易"
        row[11] = row[12] = f"{sign}{line.amount:.2f}"
        row[21] = f"{line.out_refund_no}\t" if line.is_refund else ""
        row[22] = fee
        row[23] = "0.00"
        writer.writerow(row)
        refunds += line.is_refund
        payments += not line.is_refund
    out.write("#-----------------------------------------业务明细列表结束------------------------------------\n")
    out.write(f"#交易合计：{payments}笔\n#退款合计：{refunds}笔\n")
    return out.getvalue().encode("gb18030")


# --- WeChat Pay -----------------------------------------------------------------------------------
WECHATPAY_COLUMNS = (
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
)
_WECHATPAY_NEEDED = ("微信订单号", "商户订单号", "交易状态", "应结订单金额", "商户退款单号", "退款金额", "手续费")


def parse_wechatpay(content: bytes) -> list[StatementLine]:
    text = _decode(content, "utf-8")
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if line.lstrip("\ufeff").startswith("交易时间")), None)
    if start is None:
        raise StatementFormatError("not a WeChat Pay trade bill: no header line starting with 交易时间")
    header = [cell.strip().lstrip("\ufeff") for cell in next(csv.reader([lines[start]]))]
    where = _columns(header, _WECHATPAY_NEEDED, "WeChat Pay")
    amount_column = where.get("订单金额", where["应结订单金额"])
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("总交易单数"):
            break
        if line.strip():
            table.append(line)
    parsed = []
    for number, row in enumerate(csv.reader(table), start=start + 2):
        cells = [cell.strip().removeprefix("`") for cell in row]
        if len(cells) < len(header):
            raise StatementFormatError(
                f"WeChat Pay bill line {number}: {len(cells)} values, the header has {len(header)}"
            )
        status = cells[where["交易状态"]]
        if status not in ("SUCCESS", "REFUND"):
            continue  # REVOKED and the like: no money moved
        is_refund = status == "REFUND"
        parsed.append(
            StatementLine(
                is_refund=is_refund,
                out_trade_no=cells[where["商户订单号"]],
                out_refund_no=cells[where["商户退款单号"]] if is_refund else "",
                gateway_trade_no=cells[where["微信订单号"]],
                amount=abs(
                    _amount(cells[where["退款金额"]], number, "退款金额")
                    if is_refund
                    else _amount(cells[amount_column], number, "订单金额")
                ),
                fee=abs(_amount(cells[where["手续费"]] or "0", number, "手续费")),
            )
        )
    return parsed


def wechatpay_statement(lines: list[StatementLine], *, mch_id: str = "1900000000", day: str = "") -> bytes:
    """A bill in WeChat Pay's trade-bill format (UTF-8, backquoted values)."""

    def quoted(values):
        return ",".join(f"`{value}" for value in values)

    out = [",".join(WECHATPAY_COLUMNS)]
    for line in lines:
        row = [""] * len(WECHATPAY_COLUMNS)
        row[0] = f"{day} 12:00:00"
        row[2] = mch_id
        row[5] = line.gateway_trade_no
        row[6] = line.out_trade_no
        row[8] = "NATIVE"
        row[9] = "REFUND" if line.is_refund else "SUCCESS"
        row[11] = "CNY"
        row[12] = "0.00" if line.is_refund else f"{line.amount:.2f}"
        row[15] = line.out_refund_no
        row[16] = f"{line.amount:.2f}" if line.is_refund else "0.00"
        row[19] = "SUCCESS" if line.is_refund else ""
        row[22] = f"-{line.fee:.2f}" if line.is_refund and line.fee else f"{line.fee:.2f}"
        row[23] = "0.60%"
        row[24] = "0.00" if line.is_refund else f"{line.amount:.2f}"
        out.append(quoted(row))
    out.append("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额")
    out.append(quoted([str(len(lines)), "0.00", "0.00", "0.00", "0.00", "0.00", "0.00"]))
    return ("\n".join(out) + "\n").encode("utf-8")


# --- shared ------------------------------------------------------------------------------------------
def _decode(content: bytes, encoding: str) -> str:
    if not isinstance(content, bytes | bytearray):
        raise StatementFormatError("a statement is a file (bytes)")
    if b"\x00" in content[:4096]:
        raise StatementFormatError("the statement is a binary file, not CSV text")
    for candidate in ("utf-8-sig", encoding):
        try:
            return bytes(content).decode(candidate)
        except UnicodeDecodeError:
            continue
    raise StatementFormatError(f"the statement is not {encoding} text")


def _columns(header: list[str], needed: tuple[str, ...], gateway: str) -> dict[str, int]:
    where = {name: n for n, name in enumerate(header)}
    missing = [name for name in needed if name not in where]
    if missing:
        raise StatementFormatError(f"the {gateway} statement has no column {', '.join(missing)}")
    return where


def _amount(raw: str, number: int, column: str) -> Decimal:
    raw = raw.strip() or "0"
    try:
        value = Decimal(raw.replace(",", "") if "," in raw else raw)
    except InvalidOperation:
        raise StatementFormatError(f"line {number}: {column} {raw!r} is not an amount") from None
    if not value.is_finite() or value != value.quantize(FEN):
        raise StatementFormatError(f"line {number}: {column} {raw!r} is not an amount in yuan and fen")
    return value
