"""Local stand-ins for Alipay's and WeChat Pay's transfer APIs, on a real HTTP port.

Each checks what the real API checks — the request's signature with the merchant's public key,
the published parameter names and formats — and answers in the published shape, signed with
the provider's key (generated in the test). Like the real APIs they are idempotent on the
merchant's number (out_biz_no / out_bill_no): a repeat returns the first transfer and moves no
more money. Scenarios are chosen by the payee account, so a test says which answer it wants by
the account it pays to.
"""

from __future__ import annotations

import base64
import json
import random
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kamen import rsa_signing


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class Transfer:
    number: str
    provider_no: str
    amount: str
    payee: str
    name: str
    state: str


@dataclass
class Ledger:
    """What the fake provider did: transfers by our number, money moved, refused requests."""

    transfers: dict[str, Transfer] = field(default_factory=dict)
    money_moves: int = 0
    bad_signatures: int = 0
    format_errors: list[str] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def serve(handler_class) -> tuple[ThreadingHTTPServer, str]:
    """Start ``handler_class`` on a free port in 20000–29999; (server, base URL)."""
    for _attempt in range(50):
        port = random.randint(20000, 29999)  # noqa: S311 - a port, not a secret
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), handler_class)
        except OSError:
            continue
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{port}"
    raise RuntimeError("no free port")


# --- Alipay -----------------------------------------------------------------------------------
AMOUNT = re.compile(r"(0|[1-9]\d{0,9})\.\d{2}")


class FakeAlipay:
    """alipay.fund.trans.uni.transfer and alipay.fund.trans.common.query.

    Payees: 13900000000 does not exist (40004 PAYEE_NOT_EXIST); 13911111111 transfers but the
    answer is a 40004 SYSTEM_ERROR (the lost answer); 13922222222 transfers and answers
    20000; 13933333333 answers signed with a key that is not Alipay's; anything else succeeds.
    """

    def __init__(self, *, app_id: str, app_public_key: rsa.RSAPublicKey):
        self.app_id = app_id
        self.app_public_key = app_public_key
        self.key = new_key()
        self.forger = new_key()
        self.ledger = Ledger()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                status, text = fake.handle(body)
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html;charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server, self.url = serve(Handler)
        self.gateway_url = f"{self.url}/gateway.do"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method: str, node: dict, *, key=None, signed=True) -> tuple[int, str]:
        name = "error_response" if method is None else method.replace(".", "_") + "_response"
        raw = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        if not signed:
            return 200, f'{{"{name}":{raw}}}'
        sign = rsa_signing.rsa2_sign(key or self.key, raw)
        return 200, f'{{"{name}":{raw},"sign":"{sign}"}}'

    def handle(self, body: str) -> tuple[int, str]:
        params = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        ledger = self.ledger
        with ledger.lock:
            ledger.requests += 1
        try:
            rsa_signing.rsa2_verify(
                self.app_public_key, rsa_signing.sign_content(params).encode(), params.get("sign", "")
            )
        except rsa_signing.SignatureMismatch:
            with ledger.lock:
                ledger.bad_signatures += 1
            return self.answer(
                None, {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature"}, signed=False
            )
        problems = [
            f"{name}={params.get(name)!r}"
            for name, expected in (
                ("app_id", self.app_id),
                ("format", "JSON"),
                ("charset", "utf-8"),
                ("sign_type", "RSA2"),
                ("version", "1.0"),
            )
            if params.get(name) != expected
        ]
        try:
            datetime.strptime(params.get("timestamp", ""), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            problems.append("timestamp")
        biz = json.loads(params.get("biz_content", "{}"))
        method = params.get("method")
        if biz.get("product_code") != "TRANS_ACCOUNT_NO_PWD" or biz.get("biz_scene") != "DIRECT_TRANSFER":
            problems.append("product_code/biz_scene")
        if method == "alipay.fund.trans.uni.transfer":
            payee = biz.get("payee_info") or {}
            if not AMOUNT.fullmatch(str(biz.get("trans_amount", ""))):
                problems.append(f"trans_amount={biz.get('trans_amount')!r}")
            if not biz.get("out_biz_no") or not biz.get("order_title"):
                problems.append("out_biz_no/order_title")
            if payee.get("identity_type") not in ("ALIPAY_USER_ID", "ALIPAY_LOGON_ID"):
                problems.append("identity_type")
            if payee.get("identity_type") == "ALIPAY_LOGON_ID" and not payee.get("name"):
                problems.append("name is required for a logon id")
        elif method == "alipay.fund.trans.common.query":
            if not biz.get("out_biz_no"):
                problems.append("out_biz_no")
        else:
            problems.append(f"method={method!r}")
        if problems:
            ledger.format_errors.extend(problems)
            return self.answer(method, {"code": "40004", "msg": "Business Failed", "sub_code": "INVALID_PARAMETER"})
        if method == "alipay.fund.trans.common.query":
            return self.query(biz["out_biz_no"])
        return self.transfer(biz)

    def transfer(self, biz: dict) -> tuple[int, str]:
        method = "alipay.fund.trans.uni.transfer"
        payee = biz["payee_info"]
        identity = payee["identity"]
        if identity == "13900000000":
            return self.answer(
                method,
                {"code": "40004", "msg": "Business Failed", "sub_code": "PAYEE_NOT_EXIST", "sub_msg": "收款账号不存在"},
            )
        with self.ledger.lock:
            existing = self.ledger.transfers.get(biz["out_biz_no"])
            if existing is None:
                existing = Transfer(
                    number=biz["out_biz_no"],
                    provider_no="2026" + secrets.token_hex(8),
                    amount=biz["trans_amount"],
                    payee=identity,
                    name=payee.get("name", ""),
                    state="SUCCESS",
                )
                self.ledger.transfers[biz["out_biz_no"]] = existing
                self.ledger.money_moves += 1
        if identity == "13911111111":
            return self.answer(method, {"code": "40004", "msg": "Business Failed", "sub_code": "SYSTEM_ERROR"})
        if identity == "13922222222":
            return self.answer(
                method, {"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error"}
            )
        node = {
            "code": "10000",
            "msg": "Success",
            "out_biz_no": existing.number,
            "order_id": existing.provider_no,
            "pay_fund_order_id": existing.provider_no + "01",
            "status": existing.state,
            "trans_date": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        }
        return self.answer(method, node, key=self.forger if identity == "13933333333" else None)

    def query(self, out_biz_no: str) -> tuple[int, str]:
        method = "alipay.fund.trans.common.query"
        transfer = self.ledger.transfers.get(out_biz_no)
        if transfer is None:
            return self.answer(
                method,
                {"code": "40004", "msg": "Business Failed", "sub_code": "ORDER_NOT_EXIST", "sub_msg": "转账订单不存在"},
            )
        return self.answer(
            method,
            {
                "code": "10000",
                "msg": "Success",
                "order_id": transfer.provider_no,
                "pay_fund_order_id": transfer.provider_no + "01",
                "out_biz_no": transfer.number,
                "trans_amount": transfer.amount,
                "status": transfer.state,
                "pay_date": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            },
        )


# --- WeChat Pay -------------------------------------------------------------------------------
AUTHORIZATION = re.compile(
    r'WECHATPAY2-SHA256-RSA2048 mchid="(?P<mchid>[^"]+)",nonce_str="(?P<nonce>[^"]+)",'
    r'signature="(?P<signature>[^"]+)",timestamp="(?P<timestamp>\d+)",serial_no="(?P<serial>[^"]+)"'
)
BILL_PATH = "/v3/fund-app/mch-transfer/transfer-bills"


class FakeWechatPay:
    """POST transfer-bills and GET transfer-bills/out-bill-no/{n}.

    OpenIDs: one starting ``oFAIL`` is refused (400 PARAM_ERROR, no bill); ``oDOWN`` makes the
    bill but answers 500 SYSTEM_ERROR; ``oFORGE`` answers signed with a key that is not the
    platform's; ``oUSER`` waits for the user's confirmation; others are accepted (ACCEPTED) and
    succeed when queried.
    """

    serial = "PUB_KEY_ID_0114232134912410000000000000"

    def __init__(self, *, mch_id: str, app_id: str, merchant_public_key: rsa.RSAPublicKey, merchant_serial: str):
        self.mch_id = mch_id
        self.app_id = app_id
        self.merchant_public_key = merchant_public_key
        self.merchant_serial = merchant_serial
        self.key = new_key()
        self.forger = new_key()
        self.ledger = Ledger()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def _reply(self, status, data, key=None):
                body = json.dumps(data, ensure_ascii=False).encode() if data is not None else b""
                timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
                message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Wechatpay-Timestamp", timestamp)
                self.send_header("Wechatpay-Nonce", nonce)
                self.send_header("Wechatpay-Serial", fake.serial)
                self.send_header("Wechatpay-Signature", rsa_signing.rsa2_sign(key or fake.key, message))
                self.send_header("Request-ID", secrets.token_hex(8))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                status, data, key = fake.handle(method, self.path, dict(self.headers), body)
                if status == 401:
                    # Unauthenticated requests come back unsigned, as WeChat's do.
                    payload = json.dumps(data).encode()
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self._reply(status, data, key)

            def do_POST(self):
                self._handle("POST")

            def do_GET(self):
                self._handle("GET")

        self.server, self.url = serve(Handler)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def platform_public_pem(self) -> str:
        return public_pem(self.key)

    def handle(self, method: str, path: str, headers: dict, body: bytes):
        ledger = self.ledger
        with ledger.lock:
            ledger.requests += 1
        headers = {key.lower(): value for key, value in headers.items()}
        match = AUTHORIZATION.fullmatch(headers.get("authorization", ""))
        try:
            if match is None or match["mchid"] != self.mch_id or match["serial"] != self.merchant_serial:
                raise rsa_signing.SignatureMismatch("authorization header")
            message = f"{method}\n{path}\n{match['timestamp']}\n{match['nonce']}\n{body.decode()}\n"
            rsa_signing.rsa2_verify(self.merchant_public_key, message.encode(), match["signature"])
        except rsa_signing.SignatureMismatch:
            with ledger.lock:
                ledger.bad_signatures += 1
            return 401, {"code": "SIGN_ERROR", "message": "签名错误"}, None
        if method == "GET" and path.startswith(BILL_PATH + "/out-bill-no/"):
            number = urllib.parse.unquote(path.rsplit("/", 1)[1])
            transfer = ledger.transfers.get(number)
            if transfer is None:
                return 404, {"code": "NOT_FOUND", "message": "记录不存在"}, None
            if transfer.state == "ACCEPTED":
                transfer.state = "SUCCESS"  # the transfer finished in the meantime
            return 200, self.bill(transfer), None
        if method != "POST" or path != BILL_PATH:
            return 404, {"code": "NOT_FOUND", "message": "no such API"}, None
        data = json.loads(body)
        problems = []
        if headers.get("wechatpay-serial") != self.serial:
            problems.append("Wechatpay-Serial")
        if headers.get("content-type") != "application/json":
            problems.append("content-type")
        for name in ("appid", "out_bill_no", "transfer_scene_id", "openid", "transfer_remark"):
            if not isinstance(data.get(name), str) or not data[name]:
                problems.append(name)
        if data.get("appid") != self.app_id:
            problems.append("appid")
        if type(data.get("transfer_amount")) is not int or data["transfer_amount"] <= 0:
            problems.append("transfer_amount")
        if len(data.get("transfer_remark", "")) > 32:
            problems.append("transfer_remark too long")
        if not re.fullmatch(r"[A-Za-z0-9]{5,32}", data.get("out_bill_no", "")):
            problems.append("out_bill_no")
        infos = data.get("transfer_scene_report_infos")
        if not isinstance(infos, list) or not all({"info_type", "info_content"} <= set(info) for info in infos):
            problems.append("transfer_scene_report_infos")
        name = ""
        if "user_name" in data:
            try:
                name = self.key.decrypt(
                    base64.b64decode(data["user_name"]),
                    padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
                ).decode()
            except ValueError:
                problems.append("user_name does not decrypt with the platform key")
        if problems:
            ledger.format_errors.extend(problems)
            return 400, {"code": "PARAM_ERROR", "message": "参数错误：" + ",".join(problems)}, None
        openid = data["openid"]
        if openid.startswith("oFAIL"):
            return 400, {"code": "PARAM_ERROR", "message": "openid与appid不匹配"}, None
        with ledger.lock:
            transfer = ledger.transfers.get(data["out_bill_no"])
            if transfer is None:
                transfer = Transfer(
                    number=data["out_bill_no"],
                    provider_no="1330000" + secrets.token_hex(6),
                    amount=str(data["transfer_amount"]),
                    payee=openid,
                    name=name,
                    state="WAIT_USER_CONFIRM" if openid.startswith("oUSER") else "ACCEPTED",
                )
                ledger.transfers[data["out_bill_no"]] = transfer
                ledger.money_moves += 1
        if openid.startswith("oDOWN"):
            return 500, {"code": "SYSTEM_ERROR", "message": "系统繁忙，请稍后重试"}, None
        answer = {
            "out_bill_no": transfer.number,
            "transfer_bill_no": transfer.provider_no,
            "create_time": "2026-12-07T10:00:00+08:00",
            "state": transfer.state,
        }
        if transfer.state == "WAIT_USER_CONFIRM":
            answer["package_info"] = "affffddafdfafddffda=="
        return 200, answer, self.forger if openid.startswith("oFORGE") else None

    def bill(self, transfer: Transfer) -> dict:
        return {
            "mch_id": self.mch_id,
            "out_bill_no": transfer.number,
            "transfer_bill_no": transfer.provider_no,
            "appid": self.app_id,
            "state": transfer.state,
            "transfer_amount": int(transfer.amount),
            "transfer_remark": "佣金提现",
            "openid": transfer.payee,
            "create_time": "2026-12-07T10:00:00+08:00",
            "update_time": "2026-12-07T10:00:05+08:00",
        }
