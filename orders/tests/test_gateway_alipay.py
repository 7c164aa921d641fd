"""Alipay adapter against the documented message formats, with locally generated RSA keys.

The "Alipay side" of each exchange (notify, API answers) is built here the way Alipay builds
it, signed with a key standing in for Alipay's; the adapter only knows its public half.
"""

import base64
import json
import urllib.parse
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from orders.gateways.alipay import AlipayGateway
from orders.gateways.base import (
    GatewayError,
    HttpResponse,
    MalformedNotification,
    PaymentOutcome,
    PaymentRequest,
    SignatureInvalid,
)

APP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # the merchant's app key
ALIPAY_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # stands in for Alipay's
FORGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
APP_ID = "2021004100000001"
SELLER_ID = "2088101117955611"


def private_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def make_gateway(transport=None, seller_id="") -> AlipayGateway:
    return AlipayGateway(
        app_id=APP_ID,
        app_private_key_pem=private_pem(APP_KEY),
        alipay_public_key_pem=public_pem(ALIPAY_KEY),
        seller_id=seller_id,
        transport=transport,
    )


def rsa2(key, content: str) -> str:
    return base64.b64encode(key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def verify_rsa2(public_key, content: str, signature: str) -> None:
    public_key.verify(base64.b64decode(signature), content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())


def sample_notify(**overrides) -> dict[str, str]:
    """An asynchronous notify of a paid page-pay trade, shaped like the example in Alipay's docs."""
    params = {
        "gmt_create": "2026-11-23 20:10:02",
        "charset": "utf-8",
        "seller_email": "shop@example.com",
        "subject": "Steam 充值卡 50 元",
        "buyer_id": "2088102122524333",
        "invoice_amount": "48.00",
        "notify_id": "2026112300222201003012345678901234",
        "fund_bill_list": '[{"amount":"48.00","fundChannel":"ALIPAYACCOUNT"}]',
        "notify_type": "trade_status_sync",
        "trade_status": "TRADE_SUCCESS",
        "receipt_amount": "48.00",
        "app_id": APP_ID,
        "buyer_pay_amount": "48.00",
        "seller_id": SELLER_ID,
        "gmt_payment": "2026-11-23 20:10:03",
        "notify_time": "2026-11-23 20:10:04",
        "version": "1.0",
        "out_trade_no": "K00000001",
        "total_amount": "48.00",
        "trade_no": "2026112322001404331234567890",
        "auth_app_id": APP_ID,
        "buyer_logon_id": "159****5620",
        "point_amount": "0.00",
    }
    params.update(overrides)
    return params


def signed_by_alipay(params: dict[str, str], key=ALIPAY_KEY) -> dict[str, str]:
    content = "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type"))
    return {**params, "sign_type": "RSA2", "sign": rsa2(key, content)}


def form(params: dict[str, str], encoding: str = "utf-8") -> bytes:
    return urllib.parse.urlencode(params, encoding=encoding).encode("ascii")


def api_answer(node_name: str, raw_node: str, key=ALIPAY_KEY, signature: str | None = None) -> HttpResponse:
    """An API answer exactly as Alipay sends it: the node's raw text, then its signature."""
    signature = rsa2(key, raw_node) if signature is None else signature
    return HttpResponse(
        200, {"content-type": "text/html;charset=utf-8"}, f'{{"{node_name}":{raw_node},"sign":"{signature}"}}'.encode()
    )


class FakeAlipay:
    """A transport answering queued responses and recording each request's decoded parameters."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests = []

    def __call__(self, method, url, headers, body):
        self.requests.append(
            {"method": method, "url": url, "headers": headers, "params": dict(urllib.parse.parse_qsl(body.decode()))}
        )
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


# --- notifications ------------------------------------------------------------------------------


def test_a_signed_notify_parses_into_a_paid_notification():
    # given a notify Alipay signed
    body = form(signed_by_alipay(sample_notify()))

    # when it is parsed
    notification = make_gateway(seller_id=SELLER_ID).parse_notification(body=body, headers={})

    # then it says who paid what, in Kamen's terms
    assert notification.outcome == PaymentOutcome.SUCCEEDED
    assert notification.amount == Decimal("48.00")
    assert notification.currency == "CNY"
    assert notification.out_trade_no == "K00000001"
    assert notification.gateway_trade_no == "2026112322001404331234567890"
    assert notification.event_id == "2026112300222201003012345678901234"
    assert notification.app_id == APP_ID
    assert notification.paid_at == datetime(2026, 11, 23, 12, 10, 3, tzinfo=UTC)
    assert "sign" not in notification.raw
    assert notification.raw["subject"] == "Steam 充值卡 50 元"


@pytest.mark.parametrize(
    ("trade_status", "outcome"),
    [
        ("TRADE_SUCCESS", PaymentOutcome.SUCCEEDED),
        ("TRADE_FINISHED", PaymentOutcome.SUCCEEDED),
        ("WAIT_BUYER_PAY", PaymentOutcome.PENDING),
        ("TRADE_CLOSED", PaymentOutcome.CLOSED),
    ],
)
def test_trade_statuses_map_to_outcomes(trade_status, outcome):
    body = form(signed_by_alipay(sample_notify(trade_status=trade_status)))

    assert make_gateway().parse_notification(body=body, headers={}).outcome == outcome


def test_an_unknown_trade_status_is_malformed():
    body = form(signed_by_alipay(sample_notify(trade_status="TRADE_PENDING_FOREVER")))

    with pytest.raises(MalformedNotification):
        make_gateway().parse_notification(body=body, headers={})


def test_a_notify_in_gbk_verifies_over_the_decoded_text():
    # given a merchant whose Alipay app is set to GBK
    body = form(signed_by_alipay(sample_notify(charset="gbk")), encoding="gbk")

    notification = make_gateway().parse_notification(body=body, headers={})

    assert notification.raw["subject"] == "Steam 充值卡 50 元"


def test_a_tampered_amount_is_rejected():
    # given a signed notify whose amount someone lowered afterwards
    params = signed_by_alipay(sample_notify())
    params["total_amount"] = "0.01"

    with pytest.raises(SignatureInvalid):
        make_gateway().parse_notification(body=form(params), headers={})


def test_a_notify_signed_with_another_key_is_rejected():
    body = form(signed_by_alipay(sample_notify(), key=FORGER_KEY))

    with pytest.raises(SignatureInvalid):
        make_gateway().parse_notification(body=body, headers={})


def test_a_notify_without_sign_is_rejected():
    params = signed_by_alipay(sample_notify())
    del params["sign"]

    with pytest.raises(SignatureInvalid):
        make_gateway().parse_notification(body=form(params), headers={})


def test_a_notify_with_an_empty_sign_is_rejected():
    params = {**signed_by_alipay(sample_notify()), "sign": ""}

    with pytest.raises(SignatureInvalid):
        make_gateway().parse_notification(body=form(params), headers={})


def test_a_legacy_rsa_sha1_notify_is_rejected():
    params = {**signed_by_alipay(sample_notify()), "sign_type": "RSA"}

    with pytest.raises(SignatureInvalid):
        make_gateway().parse_notification(body=form(params), headers={})


def test_a_notify_for_another_seller_is_rejected_when_the_seller_is_configured():
    body = form(signed_by_alipay(sample_notify(seller_id="2088000000000000")))

    with pytest.raises(MalformedNotification):
        make_gateway(seller_id=SELLER_ID).parse_notification(body=body, headers={})


@pytest.mark.parametrize(
    "total_amount", ["", "abc", "48.001", "-48.00", "1e2", " 48.00", "48.", "NaN", "Infinity", "４８.00"]
)
def test_a_properly_signed_notify_with_a_malformed_amount_is_malformed(total_amount):
    body = form(signed_by_alipay(sample_notify(total_amount=total_amount)))

    with pytest.raises(MalformedNotification):
        make_gateway().parse_notification(body=body, headers={})


def test_a_notify_missing_its_notify_id_is_malformed():
    params = sample_notify()
    del params["notify_id"]

    with pytest.raises(MalformedNotification):
        make_gateway().parse_notification(body=form(signed_by_alipay(params)), headers={})


def test_a_notify_repeating_a_parameter_is_malformed():
    body = form(signed_by_alipay(sample_notify())) + b"&total_amount=0.01"

    with pytest.raises(MalformedNotification):
        make_gateway().parse_notification(body=body, headers={})


SIGNED_NOTIFY = signed_by_alipay(sample_notify())
NOTIFY_FIELDS = sorted(SIGNED_NOTIFY)
GATEWAY = make_gateway()  # loading an RSA key checks it (~40 ms); the property reuses one adapter


@settings(max_examples=150, deadline=None)
@given(
    field_index=st.integers(min_value=0, max_value=len(NOTIFY_FIELDS) - 1),
    in_key=st.booleans(),
    position=st.integers(min_value=0, max_value=10_000),
    replacement=st.characters(codec="utf-8"),
)
def test_any_single_character_tamper_of_a_signed_notify_is_rejected(field_index, in_key, position, replacement):
    # given a signed notify with one character of one name or value changed
    pairs = list(SIGNED_NOTIFY.items())
    index = next(i for i, (key, _) in enumerate(pairs) if key == NOTIFY_FIELDS[field_index])
    key, value = pairs[index]
    target = key if in_key or not value else value
    position %= len(target)
    if target[position] == replacement:
        replacement = "X" if replacement != "X" else "Y"
    tampered = target[:position] + replacement + target[position + 1 :]
    pairs[index] = (tampered, value) if target is key else (key, tampered)

    # then it never verifies
    with pytest.raises(SignatureInvalid):
        GATEWAY.parse_notification(body=form(dict(pairs)), headers={})


def test_the_answer_is_success_only_when_accepted():
    gateway = make_gateway()

    accepted, rejected = gateway.answer_notification(accepted=True), gateway.answer_notification(accepted=False)

    assert (accepted.status, accepted.body) == (200, "success")
    assert (rejected.status, rejected.body) == (200, "fail")
    assert accepted.content_type.startswith("text/plain")


# --- starting a payment -------------------------------------------------------------------------


def start_params(url: str) -> dict[str, str]:
    split = urllib.parse.urlsplit(url)
    assert f"{split.scheme}://{split.netloc}{split.path}" == "https://openapi.alipay.com/gateway.do"
    return dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))


def test_the_page_pay_url_is_signed_by_the_app_and_carries_the_order():
    # given a 48 yuan order expiring at 20:30 Beijing time
    request = PaymentRequest(
        out_trade_no="K00000001",
        amount=Decimal("48.00"),
        subject="Steam 充值卡 50 元",
        notify_url="https://shop.example.com/pay/alipay/notify/",
        return_url="https://shop.example.com/orders/K00000001/",
        scene="page",
        expires_at=datetime(2026, 11, 23, 12, 30, tzinfo=UTC),
    )

    # when the payment starts
    start = make_gateway().start_payment(request)

    # then the URL's signature verifies with the app's public key over the sorted parameters
    params = start_params(start.redirect_url)
    content = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign")
    verify_rsa2(APP_KEY.public_key(), content, params["sign"])
    assert params["method"] == "alipay.trade.page.pay"
    assert params["app_id"] == APP_ID
    assert (params["format"], params["charset"], params["sign_type"], params["version"]) == (
        "JSON",
        "utf-8",
        "RSA2",
        "1.0",
    )
    assert params["notify_url"] == "https://shop.example.com/pay/alipay/notify/"
    assert params["return_url"] == "https://shop.example.com/orders/K00000001/"
    datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S")
    # and the business content names the order, the amount as yuan text and the expiry in Beijing time
    biz_content = json.loads(params["biz_content"])
    assert biz_content == {
        "out_trade_no": "K00000001",
        "total_amount": "48.00",
        "subject": "Steam 充值卡 50 元",
        "product_code": "FAST_INSTANT_TRADE_PAY",
        "time_expire": "2026-11-23 20:30:00",
    }
    assert start.qr_text == ""


def test_the_wap_pay_url_uses_the_wap_method_and_product():
    request = PaymentRequest(
        out_trade_no="K00000002", amount=Decimal("0.01"), subject="test", notify_url="https://s/n/", scene="wap"
    )

    params = start_params(make_gateway().start_payment(request).redirect_url)

    assert params["method"] == "alipay.trade.wap.pay"
    assert json.loads(params["biz_content"])["product_code"] == "QUICK_WAP_WAY"
    assert json.loads(params["biz_content"])["total_amount"] == "0.01"
    assert "return_url" not in params  # empty parameters are neither sent nor signed


@pytest.mark.parametrize("amount", [Decimal("48.001"), Decimal(0), Decimal("-1.00"), Decimal("NaN")])
def test_an_amount_that_is_not_whole_positive_fen_cannot_start_a_payment(amount):
    request = PaymentRequest(out_trade_no="K1", amount=amount, subject="x", notify_url="https://s/n/")

    with pytest.raises(ValueError):
        make_gateway().start_payment(request)


def test_an_unknown_scene_cannot_start_a_payment():
    request = PaymentRequest(
        out_trade_no="K1", amount=Decimal("1.00"), subject="x", notify_url="https://s/n/", scene="native"
    )

    with pytest.raises(ValueError):
        make_gateway().start_payment(request)


# --- active query --------------------------------------------------------------------------------

# Alipay's own spacing and key order, Chinese unescaped: verification must use this exact text.
QUERY_PAID = (
    '{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","buyer_pay_amount":"48.00",'
    '"buyer_user_id":"2088102122524333","invoice_amount":"48.00","out_trade_no":"K00000001",'
    '"point_amount":"0.00","receipt_amount":"48.00","send_pay_date":"2026-11-23 20:10:03",'
    '"total_amount":"48.00","trade_no":"2026112322001404331234567890","trade_status":"TRADE_SUCCESS",'
    '"subject": "Steam 充值卡 50 元"}'
)


def test_a_signed_query_answer_gives_the_payment_status():
    # given Alipay answers the query with a signed paid trade
    transport = FakeAlipay(api_answer("alipay_trade_query_response", QUERY_PAID))

    # when Kamen asks
    notification = make_gateway(transport).query_payment(out_trade_no="K00000001")

    # then the payment is known as paid, for the right amount
    assert notification.outcome == PaymentOutcome.SUCCEEDED
    assert notification.amount == Decimal("48.00")
    assert notification.gateway_trade_no == "2026112322001404331234567890"
    assert notification.event_id == "query:2026112322001404331234567890:TRADE_SUCCESS"
    assert notification.paid_at == datetime(2026, 11, 23, 12, 10, 3, tzinfo=UTC)
    # and the request was an app-signed alipay.trade.query POST
    sent = transport.requests[0]
    assert sent["method"] == "POST"
    assert sent["params"]["method"] == "alipay.trade.query"
    assert json.loads(sent["params"]["biz_content"]) == {"out_trade_no": "K00000001"}
    content = "&".join(f"{k}={sent['params'][k]}" for k in sorted(sent["params"]) if k != "sign")
    verify_rsa2(APP_KEY.public_key(), content, sent["params"]["sign"])


def test_a_query_for_a_trade_alipay_does_not_know_gives_none():
    node = '{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}'

    assert (
        make_gateway(FakeAlipay(api_answer("alipay_trade_query_response", node))).query_payment(out_trade_no="K9")
        is None
    )


def test_a_query_answer_with_a_bad_signature_is_rejected():
    transport = FakeAlipay(api_answer("alipay_trade_query_response", QUERY_PAID, key=FORGER_KEY))

    with pytest.raises(SignatureInvalid):
        make_gateway(transport).query_payment(out_trade_no="K00000001")


def test_a_query_answer_altered_after_signing_is_rejected():
    signature = rsa2(ALIPAY_KEY, QUERY_PAID)
    altered = QUERY_PAID.replace('"total_amount":"48.00"', '"total_amount":"4800.00"')
    transport = FakeAlipay(api_answer("alipay_trade_query_response", altered, signature=signature))

    with pytest.raises(SignatureInvalid):
        make_gateway(transport).query_payment(out_trade_no="K00000001")


def test_an_unsigned_successful_query_answer_is_rejected():
    transport = FakeAlipay(HttpResponse(200, {}, f'{{"alipay_trade_query_response":{QUERY_PAID}}}'.encode()))

    with pytest.raises(SignatureInvalid):
        make_gateway(transport).query_payment(out_trade_no="K00000001")


def test_an_unsigned_gateway_error_is_a_gateway_error():
    node = '{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}'
    transport = FakeAlipay(HttpResponse(200, {}, f'{{"alipay_trade_query_response":{node}}}'.encode()))

    with pytest.raises(GatewayError, match="isv.invalid-app-id"):
        make_gateway(transport).query_payment(out_trade_no="K00000001")


@pytest.mark.parametrize(
    "response",
    [
        HttpResponse(502, {}, b"<html>Bad Gateway</html>"),
        HttpResponse(200, {}, b"<html>maintenance</html>"),
        HttpResponse(200, {}, b'{"unexpected_response":{}}'),
        GatewayError("gateway unreachable: URLError"),
    ],
)
def test_an_unreachable_or_unusable_alipay_is_a_gateway_error(response):
    with pytest.raises(GatewayError) as raised:
        make_gateway(FakeAlipay(response)).query_payment(out_trade_no="K00000001")

    assert not isinstance(raised.value, SignatureInvalid)


# --- refund --------------------------------------------------------------------------------------


def refund_node(fund_change: str) -> str:
    return (
        '{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","buyer_user_id":"2088102122524333",'
        f'"fund_change":"{fund_change}","gmt_refund_pay":"2026-11-23 21:00:00","out_trade_no":"K00000001",'
        '"refund_fee":"10.00","send_back_fee":"10.00","trade_no":"2026112322001404331234567890"}'
    )


def test_a_refund_that_moved_money_has_succeeded():
    transport = FakeAlipay(api_answer("alipay_trade_refund_response", refund_node("Y")))

    result = make_gateway(transport).refund(
        out_trade_no="K00000001",
        out_refund_no="R00000001",
        refund_amount=Decimal("10.00"),
        total_amount=Decimal("48.00"),
        reason="缺货退款",
    )

    assert result.is_succeeded is True
    assert result.amount == Decimal("10.00")
    assert result.out_refund_no == "R00000001"
    assert result.gateway_refund_no == "2026112322001404331234567890"
    biz_content = json.loads(transport.requests[0]["params"]["biz_content"])
    assert biz_content == {
        "out_trade_no": "K00000001",
        "refund_amount": "10.00",
        "out_request_no": "R00000001",
        "refund_reason": "缺货退款",
    }


def test_a_repeated_refund_is_confirmed_by_a_refund_query():
    # given a refund already done: Alipay answers fund_change N, the refund query says it succeeded
    query = '{"code":"10000","msg":"Success","out_request_no":"R00000001","refund_amount":"10.00","refund_status":"REFUND_SUCCESS"}'
    transport = FakeAlipay(
        api_answer("alipay_trade_refund_response", refund_node("N")),
        api_answer("alipay_trade_fastpay_refund_query_response", query),
    )

    result = make_gateway(transport).refund(
        out_trade_no="K00000001",
        out_refund_no="R00000001",
        refund_amount=Decimal("10.00"),
        total_amount=Decimal("48.00"),
        reason="",
    )

    assert result.is_succeeded is True
    assert transport.requests[1]["params"]["method"] == "alipay.trade.fastpay.refund.query"


def test_a_refund_not_yet_confirmed_is_not_succeeded():
    query = '{"code":"10000","msg":"Success","out_request_no":"R00000001"}'
    transport = FakeAlipay(
        api_answer("alipay_trade_refund_response", refund_node("N")),
        api_answer("alipay_trade_fastpay_refund_query_response", query),
    )

    result = make_gateway(transport).refund(
        out_trade_no="K00000001",
        out_refund_no="R00000001",
        refund_amount=Decimal("10.00"),
        total_amount=Decimal("48.00"),
        reason="",
    )

    assert result.is_succeeded is False


def test_a_refund_alipay_refuses_is_a_gateway_error():
    node = (
        '{"code":"40004","msg":"Business Failed","sub_code":"ACQ.REFUND_AMT_NOT_EQUAL_TOTAL","sub_msg":"退款金额超限"}'
    )
    transport = FakeAlipay(api_answer("alipay_trade_refund_response", node))

    with pytest.raises(GatewayError, match="ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"):
        make_gateway(transport).refund(
            out_trade_no="K00000001",
            out_refund_no="R1",
            refund_amount=Decimal("99.00"),
            total_amount=Decimal("48.00"),
            reason="",
        )


def test_a_refund_answer_with_a_forged_signature_is_rejected():
    transport = FakeAlipay(api_answer("alipay_trade_refund_response", refund_node("Y"), key=FORGER_KEY))

    with pytest.raises(SignatureInvalid):
        make_gateway(transport).refund(
            out_trade_no="K00000001",
            out_refund_no="R1",
            refund_amount=Decimal("10.00"),
            total_amount=Decimal("48.00"),
            reason="",
        )


def test_keys_in_the_consoles_bare_base64_form_are_accepted():
    # given keys pasted as the Alipay key tool prints them: base64 DER without PEM armour
    private_der = APP_KEY.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public_der = ALIPAY_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    gateway = AlipayGateway(APP_ID, base64.b64encode(private_der).decode(), base64.b64encode(public_der).decode())

    notification = gateway.parse_notification(body=form(signed_by_alipay(sample_notify())), headers={})

    assert notification.amount == Decimal("48.00")
    assert APP_ID in repr(gateway) and "PRIVATE" not in repr(gateway)


def test_the_default_transport_reports_an_unreachable_alipay_as_a_gateway_error():
    # given the real HTTP transport pointed at a closed local port
    gateway = AlipayGateway(
        APP_ID, private_pem(APP_KEY), public_pem(ALIPAY_KEY), gateway_url="http://127.0.0.1:9/gateway.do"
    )

    with pytest.raises(GatewayError, match="unreachable"):
        gateway.query_payment(out_trade_no="K00000001")
