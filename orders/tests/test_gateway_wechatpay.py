"""WeChat Pay API v3 adapter against the documented message formats, with local keys.

The "WeChat side" (platform-signed answers and notifications, resources encrypted under the
API v3 key) is built here the way WeChat builds it; the adapter knows only the platform key's
public half and its serial.
"""

import base64
import json
import re
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from orders.gateways.base import (
    GatewayError,
    HttpResponse,
    MalformedNotification,
    PaymentOutcome,
    PaymentRequest,
    SignatureInvalid,
)
from orders.gateways.wechatpay import WechatPayGateway, fen_to_yuan, yuan_to_fen

MERCHANT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PLATFORM_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # stands in for WeChat's
FORGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PLATFORM_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
MERCHANT_SERIAL = "444F4864EA9B34415C4E6F1E76D3C83E4E6A1C2B"
API_V3_KEY = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"  # 32 characters, as the merchant platform sets it
APP_ID = "wxd678efh567hg6787"
MCH_ID = "1230000109"


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


def make_gateway(transport=None, platform_certificates=None) -> WechatPayGateway:
    return WechatPayGateway(
        app_id=APP_ID,
        mch_id=MCH_ID,
        api_v3_key=API_V3_KEY,
        merchant_private_key_pem=private_pem(MERCHANT_KEY),
        merchant_serial_no=MERCHANT_SERIAL,
        platform_certificates=platform_certificates or {PLATFORM_SERIAL: public_pem(PLATFORM_KEY)},
        transport=transport,
    )


def platform_headers(body: bytes, *, key=PLATFORM_KEY, serial=PLATFORM_SERIAL, timestamp=None, nonce="fdasflkja484w"):
    """The headers WeChat puts on an answer or a notification: its signature over the body."""
    timestamp = str(int(time.time())) if timestamp is None else str(timestamp)
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    return {
        "wechatpay-timestamp": timestamp,
        "wechatpay-nonce": nonce,
        "wechatpay-signature": signature,
        "wechatpay-serial": serial,
    }


def sample_transaction(**overrides) -> dict:
    """A paid Native transaction, shaped like the example in WeChat Pay's docs."""
    transaction = {
        "appid": APP_ID,
        "mchid": MCH_ID,
        "out_trade_no": "K00000001",
        "transaction_id": "4200001234202611231234567890",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "CMC",
        "attach": "",
        "success_time": "2026-11-23T20:10:03+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": 4800, "payer_total": 4800, "currency": "CNY", "payer_currency": "CNY"},
    }
    transaction.update(overrides)
    return transaction


def encrypted_notification(transaction: dict, *, key: str = API_V3_KEY, event_id="EV-2018022511223320873") -> bytes:
    nonce, associated_data = "fdasfwqewlkja484w", "transaction"
    ciphertext = AESGCM(key.encode()).encrypt(
        nonce.encode(), json.dumps(transaction, ensure_ascii=False).encode(), associated_data.encode()
    )
    envelope = {
        "id": event_id,
        "create_time": "2026-11-23T20:10:04+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": associated_data,
            "nonce": nonce,
        },
    }
    return json.dumps(envelope, ensure_ascii=False).encode()


def signed_answer(status: int, payload: dict | None, **header_options) -> HttpResponse:
    body = json.dumps(payload, ensure_ascii=False).encode() if payload is not None else b""
    return HttpResponse(status, {"Content-Type": "application/json", **platform_headers(body, **header_options)}, body)


class FakeWechat:
    """A transport answering queued responses and recording each request."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests = []

    def __call__(self, method, url, headers, body):
        self.requests.append({"method": method, "url": url, "headers": headers, "body": body})
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


def verify_merchant_authorization(request: dict) -> dict[str, str]:
    """Check the request's Authorization header as WeChat does; return its fields."""
    scheme, _, fields_text = request["headers"]["Authorization"].partition(" ")
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    fields = dict(re.findall(r'(\w+)="([^"]*)"', fields_text))
    assert list(fields) == ["mchid", "nonce_str", "signature", "timestamp", "serial_no"]
    split = urllib.parse.urlsplit(request["url"])
    path = split.path + (f"?{split.query}" if split.query else "")
    body = (request["body"] or b"").decode()
    message = f"{request['method']}\n{path}\n{fields['timestamp']}\n{fields['nonce_str']}\n{body}\n".encode()
    MERCHANT_KEY.public_key().verify(
        base64.b64decode(fields["signature"]), message, padding.PKCS1v15(), hashes.SHA256()
    )
    assert fields["mchid"] == MCH_ID
    assert fields["serial_no"] == MERCHANT_SERIAL
    assert abs(int(fields["timestamp"]) - time.time()) < 60
    return fields


# --- notifications ------------------------------------------------------------------------------


def test_a_signed_encrypted_notification_parses_into_a_paid_notification():
    # given a notification WeChat signed, its resource encrypted with the API v3 key
    body = encrypted_notification(sample_transaction())

    # when it is parsed
    notification = make_gateway().parse_notification(body=body, headers=platform_headers(body))

    # then it says who paid what, in Kamen's terms
    assert notification.outcome == PaymentOutcome.SUCCEEDED
    assert notification.amount == Decimal("48.00")
    assert notification.currency == "CNY"
    assert notification.out_trade_no == "K00000001"
    assert notification.gateway_trade_no == "4200001234202611231234567890"
    assert notification.app_id == APP_ID
    assert notification.event_id == "EV-2018022511223320873"
    assert notification.paid_at == datetime(2026, 11, 23, 12, 10, 3, tzinfo=UTC)
    assert notification.raw["transaction"]["trade_state_desc"] == "支付成功"


@pytest.mark.parametrize(
    ("trade_state", "outcome"),
    [
        ("SUCCESS", PaymentOutcome.SUCCEEDED),
        ("NOTPAY", PaymentOutcome.PENDING),
        ("USERPAYING", PaymentOutcome.PENDING),
        ("CLOSED", PaymentOutcome.CLOSED),
        ("REVOKED", PaymentOutcome.CLOSED),
        ("PAYERROR", PaymentOutcome.FAILED),
        ("REFUND", PaymentOutcome.REFUNDED),
    ],
)
def test_trade_states_map_to_outcomes(trade_state, outcome):
    body = encrypted_notification(sample_transaction(trade_state=trade_state))

    assert make_gateway().parse_notification(body=body, headers=platform_headers(body)).outcome == outcome


def test_a_notification_altered_after_signing_is_rejected():
    body = encrypted_notification(sample_transaction())
    headers = platform_headers(body)
    altered = body.replace(b"EV-2018022511223320873", b"EV-2018022511223320874")

    with pytest.raises(SignatureInvalid):
        make_gateway().parse_notification(body=altered, headers=headers)


def test_a_notification_signed_with_another_key_is_rejected():
    body = encrypted_notification(sample_transaction())

    with pytest.raises(SignatureInvalid):
        make_gateway().parse_notification(body=body, headers=platform_headers(body, key=FORGER_KEY))


def test_a_notification_signed_under_an_unknown_serial_is_rejected():
    body = encrypted_notification(sample_transaction())

    with pytest.raises(SignatureInvalid, match="unknown"):
        make_gateway().parse_notification(
            body=body, headers=platform_headers(body, serial="7132D72A03E93CDDF8C03BBD1F37EEDF")
        )


@pytest.mark.parametrize("age", [timedelta(minutes=6), timedelta(hours=2), -timedelta(minutes=6)])
def test_a_replayed_or_future_dated_notification_is_rejected_even_if_signed(age):
    # given a notification genuinely signed by WeChat, but not within five minutes of now
    body = encrypted_notification(sample_transaction())
    headers = platform_headers(body, timestamp=int(time.time() - age.total_seconds()))

    with pytest.raises(SignatureInvalid, match="stale"):
        make_gateway().parse_notification(body=body, headers=headers)


@pytest.mark.parametrize(
    "missing", ["wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature", "wechatpay-serial"]
)
def test_a_notification_missing_a_signature_header_is_rejected(missing):
    body = encrypted_notification(sample_transaction())
    headers = platform_headers(body)
    del headers[missing]

    with pytest.raises(SignatureInvalid):
        make_gateway().parse_notification(body=body, headers=headers)


def test_wechats_signature_probe_is_rejected():
    body = encrypted_notification(sample_transaction())

    with pytest.raises(SignatureInvalid):
        make_gateway().parse_notification(
            body=body, headers=platform_headers(body, serial="WECHATPAY/SIGNTEST/" + PLATFORM_SERIAL)
        )


def test_a_resource_encrypted_with_another_api_v3_key_is_rejected():
    # given a correctly signed envelope whose resource does not decrypt with our key
    body = encrypted_notification(sample_transaction(), key="0" * 32)

    with pytest.raises(SignatureInvalid, match="decrypt"):
        make_gateway().parse_notification(body=body, headers=platform_headers(body))


def test_a_notification_for_another_merchant_is_rejected():
    body = encrypted_notification(sample_transaction(mchid="1900000001"))

    with pytest.raises(MalformedNotification):
        make_gateway().parse_notification(body=body, headers=platform_headers(body))


@pytest.mark.parametrize("total", ["4800", 48.0, -1, True, None, 10**30 * 1.0, 10**40])
def test_a_notification_with_a_malformed_amount_is_malformed(total):
    body = encrypted_notification(sample_transaction(amount={"total": total, "currency": "CNY"}))

    with pytest.raises(MalformedNotification):
        make_gateway().parse_notification(body=body, headers=platform_headers(body))


def test_a_signed_body_that_is_not_json_is_malformed():
    body = b"<xml>v2 notify</xml>"

    with pytest.raises(MalformedNotification):
        make_gateway().parse_notification(body=body, headers=platform_headers(body))


def test_a_platform_certificate_pem_works_as_well_as_a_public_key():
    # given the platform certificate as downloaded from /v3/certificates
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(PLATFORM_KEY.public_key())
        .serial_number(int(PLATFORM_SERIAL, 16))
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(PLATFORM_KEY, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    body = encrypted_notification(sample_transaction())

    notification = make_gateway(platform_certificates={PLATFORM_SERIAL: certificate_pem}).parse_notification(
        body=body, headers=platform_headers(body)
    )

    assert notification.outcome == PaymentOutcome.SUCCEEDED


def test_the_answer_is_204_when_accepted_and_a_json_failure_otherwise():
    gateway = make_gateway()

    accepted, rejected = gateway.answer_notification(accepted=True), gateway.answer_notification(accepted=False)

    assert (accepted.status, accepted.body) == (204, "")
    assert rejected.status == 500
    assert json.loads(rejected.body)["code"] == "FAIL"
    assert rejected.content_type == "application/json"


# --- starting a payment -------------------------------------------------------------------------


def test_a_native_payment_sends_a_signed_order_and_returns_the_qr_payload():
    # given WeChat answers the Native order with a code_url
    transport = FakeWechat(signed_answer(200, {"code_url": "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}))
    request = PaymentRequest(
        out_trade_no="K00000001",
        amount=Decimal("48.00"),
        subject="Steam 充值卡 50 元",
        notify_url="https://shop.example.com/pay/wechatpay/notify/",
        scene="native",
        expires_at=datetime(2026, 11, 23, 12, 30, tzinfo=UTC),
    )

    # when the payment starts
    start = make_gateway(transport).start_payment(request)

    # then the buyer is shown the QR payload
    assert start.qr_text == "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"
    assert start.redirect_url == ""
    # and the request was a merchant-signed POST carrying the order in fen
    sent = transport.requests[0]
    assert sent["method"] == "POST"
    assert sent["url"] == "https://api.mch.weixin.qq.com/v3/pay/transactions/native"
    verify_merchant_authorization(sent)
    assert json.loads(sent["body"]) == {
        "appid": APP_ID,
        "mchid": MCH_ID,
        "description": "Steam 充值卡 50 元",
        "out_trade_no": "K00000001",
        "notify_url": "https://shop.example.com/pay/wechatpay/notify/",
        "amount": {"total": 4800, "currency": "CNY"},
        "time_expire": "2026-11-23T20:30:00+08:00",
    }


def test_an_h5_payment_sends_the_buyers_ip_and_redirects_to_the_h5_url():
    h5_url = "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016121516420242444321ca0631331346&package=1405458241"
    transport = FakeWechat(signed_answer(200, {"h5_url": h5_url}))
    request = PaymentRequest(
        out_trade_no="K00000002",
        amount=Decimal("0.01"),
        subject="测" * 100,  # 300 bytes: cut to WeChat's 127-byte limit on a character boundary
        notify_url="https://shop.example.com/pay/wechatpay/notify/",
        return_url="https://shop.example.com/orders/K00000002/?a=1",
        client_ip="203.0.113.7",
        scene="h5",
    )

    start = make_gateway(transport).start_payment(request)

    payload = json.loads(transport.requests[0]["body"])
    assert transport.requests[0]["url"].endswith("/v3/pay/transactions/h5")
    assert payload["scene_info"] == {"payer_client_ip": "203.0.113.7", "h5_info": {"type": "Wap"}}
    assert payload["amount"] == {"total": 1, "currency": "CNY"}
    assert payload["description"] == "测" * 42
    assert start.redirect_url == h5_url + "&redirect_url=https%3A%2F%2Fshop.example.com%2Forders%2FK00000002%2F%3Fa%3D1"


def test_an_h5_payment_without_the_buyers_ip_cannot_start():
    request = PaymentRequest(
        out_trade_no="K1", amount=Decimal("1.00"), subject="x", notify_url="https://s/n/", scene="h5"
    )

    with pytest.raises(ValueError):
        make_gateway(FakeWechat()).start_payment(request)


def test_a_start_answer_with_a_forged_signature_is_rejected():
    transport = FakeWechat(signed_answer(200, {"code_url": "weixin://wxpay/bizpayurl?pr=evil"}, key=FORGER_KEY))
    request = PaymentRequest(
        out_trade_no="K1", amount=Decimal("1.00"), subject="x", notify_url="https://s/n/", scene="native"
    )

    with pytest.raises(SignatureInvalid):
        make_gateway(transport).start_payment(request)


# --- active query --------------------------------------------------------------------------------


def test_a_signed_query_answer_gives_the_payment_status():
    transport = FakeWechat(signed_answer(200, sample_transaction()))

    notification = make_gateway(transport).query_payment(out_trade_no="K00000001")

    assert notification.outcome == PaymentOutcome.SUCCEEDED
    assert notification.amount == Decimal("48.00")
    assert notification.event_id == "query:4200001234202611231234567890:SUCCESS"
    sent = transport.requests[0]
    assert sent["method"] == "GET"
    assert sent["url"] == f"https://api.mch.weixin.qq.com/v3/pay/transactions/out-trade-no/K00000001?mchid={MCH_ID}"
    assert sent["body"] is None
    verify_merchant_authorization(sent)


def test_an_unpaid_order_queries_as_pending():
    unpaid = sample_transaction(trade_state="NOTPAY", amount={"total": 4800, "currency": "CNY"})
    del unpaid["transaction_id"], unpaid["success_time"]

    notification = make_gateway(FakeWechat(signed_answer(200, unpaid))).query_payment(out_trade_no="K00000001")

    assert notification.outcome == PaymentOutcome.PENDING
    assert notification.paid_at is None


def test_a_query_for_an_order_wechat_does_not_know_gives_none():
    transport = FakeWechat(signed_answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}))

    assert make_gateway(transport).query_payment(out_trade_no="K9") is None


def test_a_query_answer_with_a_bad_signature_is_rejected():
    transport = FakeWechat(signed_answer(200, sample_transaction(), key=FORGER_KEY))

    with pytest.raises(SignatureInvalid):
        make_gateway(transport).query_payment(out_trade_no="K00000001")


def test_a_stale_signed_query_answer_is_rejected():
    transport = FakeWechat(signed_answer(200, sample_transaction(), timestamp=int(time.time()) - 3600))

    with pytest.raises(SignatureInvalid):
        make_gateway(transport).query_payment(out_trade_no="K00000001")


@pytest.mark.parametrize(
    "response",
    [
        HttpResponse(500, {}, '{"code":"SYSTEM_ERROR","message":"系统错误"}'.encode()),
        HttpResponse(502, {}, b"<html>Bad Gateway</html>"),
        HttpResponse(401, {}, '{"code":"SIGN_ERROR","message":"签名错误"}'.encode()),
        GatewayError("gateway unreachable: URLError"),
    ],
)
def test_an_unreachable_or_refusing_wechat_is_a_gateway_error(response):
    with pytest.raises(GatewayError) as raised:
        make_gateway(FakeWechat(response)).query_payment(out_trade_no="K00000001")

    assert not isinstance(raised.value, SignatureInvalid)


# --- refund --------------------------------------------------------------------------------------


def refund_answer(status: str) -> dict:
    return {
        "refund_id": "50000000382019052709732678859",
        "out_refund_no": "R00000001",
        "transaction_id": "4200001234202611231234567890",
        "out_trade_no": "K00000001",
        "channel": "ORIGINAL",
        "user_received_account": "招商银行信用卡0403",
        "create_time": "2026-11-23T21:00:00+08:00",
        "status": status,
        "amount": {"total": 4800, "refund": 1000, "payer_total": 4800, "payer_refund": 1000, "currency": "CNY"},
    }


def refund(transport):
    return make_gateway(transport).refund(
        out_trade_no="K00000001",
        out_refund_no="R00000001",
        refund_amount=Decimal("10.00"),
        total_amount=Decimal("48.00"),
        reason="缺货退款",
    )


def test_a_successful_refund_sends_fen_and_reports_success():
    transport = FakeWechat(signed_answer(200, refund_answer("SUCCESS")))

    result = refund(transport)

    assert result.is_succeeded is True
    assert result.gateway_refund_no == "50000000382019052709732678859"
    assert result.amount == Decimal("10.00")
    assert transport.requests[0]["url"].endswith("/v3/refund/domestic/refunds")
    assert json.loads(transport.requests[0]["body"]) == {
        "out_trade_no": "K00000001",
        "out_refund_no": "R00000001",
        "amount": {"refund": 1000, "total": 4800, "currency": "CNY"},
        "reason": "缺货退款",
    }
    verify_merchant_authorization(transport.requests[0])


def test_a_processing_refund_is_not_yet_succeeded():
    assert refund(FakeWechat(signed_answer(200, refund_answer("PROCESSING")))).is_succeeded is False


def test_an_abnormal_refund_is_a_gateway_error():
    with pytest.raises(GatewayError, match="ABNORMAL"):
        refund(FakeWechat(signed_answer(200, refund_answer("ABNORMAL"))))


def test_a_refused_refund_is_a_gateway_error_with_wechats_words():
    with pytest.raises(GatewayError, match="NOT_ENOUGH"):
        refund(FakeWechat(signed_answer(403, {"code": "NOT_ENOUGH", "message": "基本账户余额不足"})))


def test_a_refund_answer_with_a_bad_signature_is_rejected():
    with pytest.raises(SignatureInvalid):
        refund(FakeWechat(signed_answer(200, refund_answer("SUCCESS"), key=FORGER_KEY)))


# --- amounts and configuration ------------------------------------------------------------------


@given(fen=st.integers(min_value=1, max_value=10**12))
def test_any_amount_in_fen_round_trips_through_yuan(fen):
    yuan = fen_to_yuan(fen)

    assert yuan == Decimal(fen) / 100
    assert yuan.as_tuple().exponent == -2
    assert yuan_to_fen(yuan) == fen


@pytest.mark.parametrize(
    "amount", [Decimal("0.001"), Decimal("1.005"), Decimal(0), Decimal("-0.01"), Decimal("Infinity")]
)
def test_an_amount_not_in_whole_positive_fen_is_refused_not_rounded(amount):
    with pytest.raises(ValueError):
        yuan_to_fen(amount)


def test_an_api_v3_key_of_the_wrong_length_is_refused_without_showing_it():
    with pytest.raises(ValueError) as raised:
        WechatPayGateway(
            APP_ID, MCH_ID, "short-secret", private_pem(MERCHANT_KEY), MERCHANT_SERIAL, {"S": public_pem(PLATFORM_KEY)}
        )

    assert "short-secret" not in str(raised.value)


SIGNED_BODY = encrypted_notification(sample_transaction())
GATEWAY = make_gateway()  # loading an RSA key checks it (~40 ms); the property reuses one adapter


@settings(max_examples=100, deadline=None)
@given(position=st.integers(min_value=0), replacement=st.integers(min_value=0, max_value=255))
def test_any_single_byte_tamper_of_a_signed_notification_is_rejected(position, replacement):
    # given a notification signed now, then one byte of its body changed
    headers = platform_headers(SIGNED_BODY)
    position %= len(SIGNED_BODY)
    if SIGNED_BODY[position] == replacement:
        replacement = (replacement + 1) % 256
    tampered = SIGNED_BODY[:position] + bytes([replacement]) + SIGNED_BODY[position + 1 :]

    with pytest.raises(SignatureInvalid):
        GATEWAY.parse_notification(body=tampered, headers=headers)


def test_the_default_transport_reports_an_unreachable_wechat_as_a_gateway_error():
    # given the real HTTP transport pointed at a closed local port
    gateway = WechatPayGateway(
        APP_ID,
        MCH_ID,
        API_V3_KEY,
        private_pem(MERCHANT_KEY),
        MERCHANT_SERIAL,
        {PLATFORM_SERIAL: public_pem(PLATFORM_KEY)},
        api_base="http://127.0.0.1:9",
    )

    with pytest.raises(GatewayError, match="unreachable"):
        gateway.query_payment(out_trade_no="K00000001")
