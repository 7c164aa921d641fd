"""The open API's error codes: stable, documented, each with an HTTP status and a message in
Chinese and English. The API answers every refusal as ``{code, message_zh, message_en}``."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    message_zh: str
    message_en: str


ERRORS: dict[str, ErrorSpec] = {
    "auth_missing": ErrorSpec(401, "缺少签名请求头", "Signature headers are missing"),
    "auth_unknown_key": ErrorSpec(401, "密钥不存在", "Unknown API key"),
    "auth_key_revoked": ErrorSpec(401, "密钥已吊销", "The API key has been revoked"),
    "auth_site_inactive": ErrorSpec(403, "对接商户未启用或已暂停", "The docking site is not active"),
    "auth_ip_not_allowed": ErrorSpec(403, "来源 IP 不在白名单内", "The source IP is not on the allowlist"),
    "auth_timestamp_invalid": ErrorSpec(401, "时间戳无效或超出 ±5 分钟", "Timestamp missing or outside ±5 minutes"),
    "auth_nonce_invalid": ErrorSpec(
        401, "随机数格式错误（16–64 位字母数字）", "Nonce must be 16-64 letters, digits, - or _"
    ),
    "auth_nonce_reused": ErrorSpec(401, "随机数已使用过（重放请求）", "Nonce already used (replayed request)"),
    "auth_bad_signature": ErrorSpec(401, "签名错误", "Signature does not match"),
    "auth_scope_denied": ErrorSpec(403, "密钥没有此操作的权限", "The API key lacks the scope for this operation"),
    "rate_limited": ErrorSpec(429, "请求过于频繁，请稍后再试", "Too many requests, slow down"),
    "malformed_json": ErrorSpec(400, "请求体不是合法的 JSON", "The request body is not valid JSON"),
    "invalid_request": ErrorSpec(422, "请求参数错误", "Invalid request parameters"),
    "product_not_found": ErrorSpec(404, "商品不存在或已下架", "Product not found or delisted"),
    "out_of_stock": ErrorSpec(409, "库存不足", "Not enough stock"),
    "insufficient_balance": ErrorSpec(
        402, "预存款余额及信用额度不足", "Prepaid balance and credit limit are insufficient"
    ),
    "order_not_found": ErrorSpec(404, "订单不存在", "Order not found"),
    "client_order_no_conflict": ErrorSpec(
        409, "该商户订单号已用于另一笔不同的订单", "client_order_no was already used for a different order"
    ),
    "refund_not_allowed": ErrorSpec(409, "该订单当前不能申请退款", "A refund cannot be requested for this order now"),
    "not_found": ErrorSpec(404, "接口不存在", "No such endpoint"),
    "method_not_allowed": ErrorSpec(405, "不支持的请求方法", "Method not allowed"),
    "internal_error": ErrorSpec(500, "服务器内部错误", "Internal server error"),
}


class DockingError(Exception):
    """A refusal with one of the codes above; ``detail`` (optional) says more, never a secret."""

    def __init__(self, code: str, detail: str = ""):
        if code not in ERRORS:
            raise ValueError(f"unknown API error code {code!r}")
        self.code = code
        self.detail = detail
        super().__init__(code)

    @property
    def spec(self) -> ErrorSpec:
        return ERRORS[self.code]

    def body(self) -> dict:
        body = {"code": self.code, "message_zh": self.spec.message_zh, "message_en": self.spec.message_en}
        if self.detail:
            body["detail"] = self.detail
        return body
