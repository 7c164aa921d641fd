"""Real payout adapters against local servers that check signatures and formats (issue 18 §3/§4).

The servers (payout_servers.py) verify every request's RSA2 / WECHATPAY2-SHA256-RSA2048
signature with the merchant's public key, check the published parameters, sign their answers
with the provider's key, and are idempotent on our number like the real APIs. Keys are made in
the test. Each test drives a withdrawal through the service and looks at what the distributor
and the books see.
"""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from commissions.models import (
    AccountKind,
    JournalTransaction,
    TransactionKind,
    Withdrawal,
    WithdrawalStatus,
    WithdrawalStatusChange,
)
from commissions.payouts import PayoutOutcome, PayoutResult, get_payout_adapter
from commissions.payouts.alipay import AlipayPayoutAdapter
from commissions.payouts.wechatpay import WechatPayoutAdapter
from commissions.services import (
    add_payout_account,
    approve_withdrawal,
    check_payout,
    pay_withdrawal,
    record_payout_result,
    request_withdrawal,
)
from commissions.services.ledger import credit, debit, distributor_account, merchant_account, post_journal_transaction

from .factories import UserFactory, make_chain
from .payout_servers import FakeAlipay, FakeWechatPay, new_key, private_pem, public_pem

FUNDS = Decimal("5000.00")
APP_ID = "2021000000000001"
MCH_ID = "1900000109"
WX_APP_ID = "wxd678efh567hg6787"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"


@pytest.fixture(scope="module")
def merchant_key():
    return new_key()


@pytest.fixture
def alipay(merchant_key):
    fake = FakeAlipay(app_id=APP_ID, app_public_key=merchant_key.public_key())
    adapter = AlipayPayoutAdapter(
        app_id=APP_ID,
        app_private_key_pem=private_pem(merchant_key),
        alipay_public_key_pem=public_pem(fake.key),
        gateway_url=fake.gateway_url,
    )
    yield fake, adapter
    fake.close()


@pytest.fixture
def wechat(merchant_key):
    fake = FakeWechatPay(
        mch_id=MCH_ID, app_id=WX_APP_ID, merchant_public_key=merchant_key.public_key(), merchant_serial=MERCHANT_SERIAL
    )
    adapter = WechatPayoutAdapter(
        app_id=WX_APP_ID,
        mch_id=MCH_ID,
        merchant_private_key_pem=private_pem(merchant_key),
        merchant_serial_no=MERCHANT_SERIAL,
        platform_keys={fake.serial: fake.platform_public_pem()},
        api_base=fake.url,
    )
    yield fake, adapter
    fake.close()


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Approval enqueues the payout after commit; these tests call the payout themselves."""
    from commissions import tasks

    monkeypatch.setattr(tasks.pay_withdrawal_task, "delay", lambda *args, **kwargs: None)


def _available(agent) -> Decimal:
    return distributor_account(agent.pk, AccountKind.DISTRIBUTOR_AVAILABLE).balance


def _approved(*, method="alipay", account="13800138000", amount="100.00", holder="张三"):
    """A funded distributor's withdrawal, approved by finance and ready to pay."""
    agent, *_rest = make_chain(1)
    agent.grade.withdrawal_min_amount = Decimal("1.00")
    agent.grade.withdrawal_daily_max_amount = FUNDS
    agent.grade.save()
    post_journal_transaction(
        kind=TransactionKind.SETTLEMENT,
        reference=f"fund:{agent.pk}",
        lines=[
            debit(merchant_account(AccountKind.MERCHANT_REVENUE), FUNDS),
            credit(distributor_account(agent.pk, AccountKind.DISTRIBUTOR_AVAILABLE), FUNDS),
        ],
    )
    payout_account = add_payout_account(distributor=agent, method=method, holder_name=holder, account=account)
    withdrawal = request_withdrawal(
        distributor=agent, payout_account=payout_account, amount=amount, token=f"tok-{agent.pk}"
    )
    reviewer = UserFactory(is_staff=True)
    reviewer.groups.add(Group.objects.get(name="finance"))
    approve_withdrawal(withdrawal=withdrawal, actor=reviewer)
    return agent, Withdrawal.objects.get(pk=withdrawal.pk)


def _payouts_booked(withdrawal) -> int:
    return JournalTransaction.objects.filter(reference=f"payout:{withdrawal.pk}").count()


def _returns_booked(withdrawal) -> int:
    return JournalTransaction.objects.filter(reference=f"withdrawal-return:{withdrawal.pk}").count()


def _make_old(withdrawal):
    """The payout was claimed long ago (its request may never have reached the provider)."""
    WithdrawalStatusChange.objects.filter(withdrawal=withdrawal, new_status=WithdrawalStatus.PAYING).update(
        created_at=timezone.now() - timedelta(hours=1)
    )


# --- Alipay -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_alipay_transfer_pays_the_net_amount_to_the_account_with_its_holders_name(alipay):
    fake, adapter = alipay
    agent, withdrawal = _approved(amount="100.00")

    paid = pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)

    assert paid.status == WithdrawalStatus.PAID
    transfer = fake.ledger.transfers[withdrawal.payout_no]
    assert (transfer.amount, transfer.payee, transfer.name) == (f"{withdrawal.net_amount:.2f}", "13800138000", "张三")
    assert paid.gateway_payout_no == transfer.provider_no
    assert fake.ledger.bad_signatures == 0 and fake.ledger.format_errors == []
    assert _payouts_booked(withdrawal) == 1
    assert _available(agent) == FUNDS - Decimal("100.00")


@pytest.mark.django_db
def test_alipay_refusing_an_unknown_payee_fails_the_withdrawal_and_returns_the_funds(alipay):
    fake, adapter = alipay
    agent, withdrawal = _approved(account="13900000000")

    failed = pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)

    assert failed.status == WithdrawalStatus.FAILED
    assert "PAYEE_NOT_EXIST" in failed.failure_reason
    assert _available(agent) == FUNDS
    assert fake.ledger.money_moves == 0 and _payouts_booked(withdrawal) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("account", ["13911111111", "13922222222", "13933333333"])
def test_alipay_unknown_answers_stay_paying_and_the_query_settles_them_once(alipay, account):
    """SYSTEM_ERROR, 20000 and an answer not signed by Alipay say nothing we may act on: the
    money may be gone, so the withdrawal stays paying (funds not returned) until the query."""
    fake, adapter = alipay
    agent, withdrawal = _approved(account=account)

    unknown = pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)
    assert unknown.status == WithdrawalStatus.PAYING
    assert _available(agent) == FUNDS - Decimal("100.00")

    settled = check_payout(withdrawal_id=withdrawal.pk, adapter=adapter)
    again = check_payout(withdrawal_id=withdrawal.pk, adapter=adapter)

    assert (settled.status, again.status) == (WithdrawalStatus.PAID, WithdrawalStatus.PAID)
    assert fake.ledger.money_moves == 1 and _payouts_booked(withdrawal) == 1
    assert fake.ledger.bad_signatures == 0 and fake.ledger.format_errors == []


@pytest.mark.django_db
def test_a_payout_the_provider_never_received_is_sent_again_under_the_same_number(alipay):
    fake, adapter = alipay
    agent, withdrawal = _approved()
    Withdrawal.objects.filter(pk=withdrawal.pk).update(status=WithdrawalStatus.PAYING)  # the worker died here
    WithdrawalStatusChange.objects.create(
        withdrawal=withdrawal, old_status="approved", new_status="paying", cause="sent to payout adapter"
    )

    too_soon = check_payout(withdrawal_id=withdrawal.pk, adapter=adapter)
    assert too_soon.status == WithdrawalStatus.PAYING and fake.ledger.money_moves == 0  # may be in flight
    _make_old(withdrawal)
    paid = check_payout(withdrawal_id=withdrawal.pk, adapter=adapter)

    assert paid.status == WithdrawalStatus.PAID
    assert list(fake.ledger.transfers) == [withdrawal.payout_no] and fake.ledger.money_moves == 1


@pytest.mark.django_db
def test_an_adapter_with_the_wrong_key_is_refused_by_alipay_and_nothing_is_decided(alipay):
    fake, _adapter = alipay
    agent, withdrawal = _approved()
    wrong = AlipayPayoutAdapter(
        app_id=APP_ID,
        app_private_key_pem=private_pem(new_key()),
        alipay_public_key_pem=public_pem(fake.key),
        gateway_url=fake.gateway_url,
    )

    result = pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=wrong)

    assert fake.ledger.bad_signatures == 1 and fake.ledger.money_moves == 0
    assert result.status == WithdrawalStatus.PAYING  # unsigned refusal: not proof; asked again later
    assert _available(agent) == FUNDS - Decimal("100.00")


# --- WeChat Pay -------------------------------------------------------------------------------
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.mark.django_db
def test_wechat_transfer_is_accepted_then_the_query_finds_it_paid(wechat):
    fake, adapter = wechat
    agent, withdrawal = _approved(method="wechat", account=OPENID, holder="王五")

    accepted = pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)
    assert accepted.status == WithdrawalStatus.PAYING
    assert accepted.gateway_payout_no == fake.ledger.transfers[withdrawal.payout_no].provider_no

    paid = check_payout(withdrawal_id=withdrawal.pk, adapter=adapter)

    transfer = fake.ledger.transfers[withdrawal.payout_no]
    assert paid.status == WithdrawalStatus.PAID
    assert (transfer.amount, transfer.payee, transfer.name) == (str(int(withdrawal.net_amount * 100)), OPENID, "王五")
    assert fake.ledger.bad_signatures == 0 and fake.ledger.format_errors == []
    assert _payouts_booked(withdrawal) == 1


@pytest.mark.django_db
def test_wechat_refusal_fails_the_withdrawal_and_returns_the_funds(wechat):
    fake, adapter = wechat
    agent, withdrawal = _approved(method="wechat", account="oFAIL" + "x" * 23)

    failed = pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)

    assert failed.status == WithdrawalStatus.FAILED and "PARAM_ERROR" in failed.failure_reason
    assert _available(agent) == FUNDS and _returns_booked(withdrawal) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("prefix", ["oDOWN", "oFORGE", "oUSER"])
def test_wechat_unknown_or_unfinished_transfers_stay_paying(wechat, prefix):
    """500 (the bill may exist), a forged answer, and a bill waiting for the user's
    confirmation: paying, funds not returned, not paid twice."""
    fake, adapter = wechat
    agent, withdrawal = _approved(method="wechat", account=prefix + "x" * 23)

    result = pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)

    assert result.status == WithdrawalStatus.PAYING
    assert _available(agent) == FUNDS - Decimal("100.00") and _returns_booked(withdrawal) == 0
    assert fake.ledger.money_moves == 1


@pytest.mark.django_db
def test_wechat_server_error_is_settled_by_the_query(wechat):
    fake, adapter = wechat
    agent, withdrawal = _approved(method="wechat", account="oDOWN" + "y" * 23)
    pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)

    paid = check_payout(withdrawal_id=withdrawal.pk, adapter=adapter)

    assert paid.status == WithdrawalStatus.PAID and fake.ledger.money_moves == 1


@pytest.mark.django_db
def test_a_malformed_wechat_account_fails_before_any_request_and_returns_the_funds(wechat):
    fake, adapter = wechat
    agent, withdrawal = _approved(method="wechat", account="wxid_abc")  # a WeChat ID, not an OpenID

    failed = pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)

    assert failed.status == WithdrawalStatus.FAILED and "OpenID" in failed.failure_reason
    assert fake.ledger.requests == 0 and _available(agent) == FUNDS


# --- bad input at the door ----------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "account"),
    [("alipay", "not-an-account"), ("alipay", "1380013800"), ("wechat", "a b"), ("bank_card", "6222021234567890129")],
)
def test_malformed_payout_accounts_are_refused_with_a_reason_and_nothing_is_stored(method, account):
    agent, *_rest = make_chain(1)
    with pytest.raises(ValidationError) as refused:
        add_payout_account(distributor=agent, method=method, holder_name="张三", account=account, bank_name="工行")
    assert refused.value.messages
    assert not agent.payout_accounts.exists()


@pytest.mark.django_db
def test_an_unknown_or_foreign_payout_account_is_refused_and_nothing_moves():
    agent, *_rest = make_chain(1)
    other, *_rest = make_chain(1)
    foreign = add_payout_account(distributor=other, method="alipay", holder_name="李四", account="13800138001")
    for account in (None, foreign):
        with pytest.raises(ValidationError, match="收款账户"):
            request_withdrawal(distributor=agent, payout_account=account, amount="10.00", token=f"x{account}")
    assert not Withdrawal.objects.exists()


def test_the_adapter_is_chosen_by_payout_method(settings):
    settings.COMMISSIONS_PAYOUT_ADAPTERS = {"alipay": "commissions.tests.test_payout_adapters._StubAdapter"}
    assert isinstance(get_payout_adapter("alipay"), _StubAdapter)
    assert type(get_payout_adapter("wechat")).__name__ == "SandboxPayoutAdapter"


class _StubAdapter:
    pass


# --- concurrency: 20 copies of one answer pay once --------------------------------------------------
def _run_together(count, action):
    barrier = threading.Barrier(count)
    errors = []

    def run():
        try:
            barrier.wait()
            action()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_queries_of_one_payout_pay_it_once(alipay):
    fake, adapter = alipay
    agent, withdrawal = _approved(account="13911111111")  # the transfer's answer was lost
    pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)
    paid_before = merchant_account(AccountKind.PAYOUTS_PAID).balance

    errors = _run_together(20, lambda: check_payout(withdrawal_id=withdrawal.pk, adapter=adapter))

    assert errors == []
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == WithdrawalStatus.PAID
    assert _payouts_booked(withdrawal) == 1 and fake.ledger.money_moves == 1
    assert merchant_account(AccountKind.PAYOUTS_PAID).balance == paid_before + withdrawal.net_amount
    assert WithdrawalStatusChange.objects.filter(withdrawal=withdrawal, new_status="paid").count() == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_copies_of_a_failure_return_the_funds_once():
    agent, withdrawal = _approved()
    Withdrawal.objects.filter(pk=withdrawal.pk).update(status=WithdrawalStatus.PAYING)
    failure = PayoutResult(outcome=PayoutOutcome.FAILED, failure_reason="PAYEE_NOT_EXIST")

    errors = _run_together(20, lambda: record_payout_result(withdrawal_id=withdrawal.pk, result=failure))

    assert errors == []
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == WithdrawalStatus.FAILED
    assert _returns_booked(withdrawal) == 1
    assert _available(agent) == FUNDS


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_resends_after_a_lost_request_move_the_money_once(wechat):
    fake, adapter = wechat
    agent, withdrawal = _approved(method="wechat", account=OPENID)
    Withdrawal.objects.filter(pk=withdrawal.pk).update(status=WithdrawalStatus.PAYING)
    WithdrawalStatusChange.objects.create(
        withdrawal=withdrawal, old_status="approved", new_status="paying", cause="sent to payout adapter"
    )
    _make_old(withdrawal)

    errors = _run_together(20, lambda: check_payout(withdrawal_id=withdrawal.pk, adapter=adapter))
    settled = check_payout(withdrawal_id=withdrawal.pk, adapter=adapter)

    assert errors == []
    assert fake.ledger.money_moves == 1 and list(fake.ledger.transfers) == [withdrawal.payout_no]
    assert settled.status == WithdrawalStatus.PAID and _payouts_booked(withdrawal) == 1


# --- result notifications: verified, matched, recorded once ----------------------------------------
API_V3_KEY = "0123456789abcdef0123456789abcdef"
_ADAPTERS = {}


def current_alipay_adapter():
    return _ADAPTERS["alipay"]


def current_wechat_adapter():
    return _ADAPTERS["wechat"]


@pytest.fixture
def notified(settings, alipay, wechat, merchant_key):
    """The notify URL's adapters are the test's, talking to the fake providers."""
    _fake, alipay_adapter = alipay
    wechat_fake, _adapter = wechat
    _ADAPTERS["alipay"] = alipay_adapter
    _ADAPTERS["wechat"] = WechatPayoutAdapter(
        app_id=WX_APP_ID,
        mch_id=MCH_ID,
        merchant_private_key_pem=private_pem(merchant_key),
        merchant_serial_no=MERCHANT_SERIAL,
        platform_keys={wechat_fake.serial: wechat_fake.platform_public_pem()},
        api_base=wechat_fake.url,
        api_v3_key=API_V3_KEY,
    )
    settings.COMMISSIONS_PAYOUT_ADAPTERS = {
        "alipay": f"{__name__}.current_alipay_adapter",
        "wechat": f"{__name__}.current_wechat_adapter",
    }
    yield
    _ADAPTERS.clear()


def _wechat_notification(fake, bill: dict, *, key=None) -> tuple[bytes, dict]:
    import base64
    import json
    import secrets
    import time

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from kamen import rsa_signing

    nonce = secrets.token_hex(6)
    ciphertext = AESGCM(API_V3_KEY.encode()).encrypt(nonce.encode(), json.dumps(bill).encode(), b"mch_payment")
    body = json.dumps(
        {
            "id": "EV-" + secrets.token_hex(6),
            "create_time": "2026-12-07T10:00:06+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "MCHTRANSFER.BILL.FINISHED",
            "summary": "商家转账单据终态通知",
            "resource": {
                "original_type": "mch_payment",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": "mch_payment",
                "nonce": nonce,
            },
        }
    ).encode()
    timestamp, sign_nonce = str(int(time.time())), secrets.token_hex(8)
    signature = rsa_signing.rsa2_sign(
        key or fake.key, timestamp.encode() + b"\n" + sign_nonce.encode() + b"\n" + body + b"\n"
    )
    headers = {
        "HTTP_WECHATPAY_TIMESTAMP": timestamp,
        "HTTP_WECHATPAY_NONCE": sign_nonce,
        "HTTP_WECHATPAY_SIGNATURE": signature,
        "HTTP_WECHATPAY_SERIAL": fake.serial,
    }
    return body, headers


def _alipay_notification(fake, transfer: dict, *, key=None) -> str:
    import json
    import urllib.parse

    from kamen import rsa_signing

    params = {
        "app_id": APP_ID,
        "msg_method": "alipay.fund.trans.order.changed",
        "notify_id": "2026120700222" + transfer["out_biz_no"][-6:],
        "utc_timestamp": "1765072800000",
        "version": "1.1",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "biz_content": json.dumps(transfer, ensure_ascii=False, separators=(",", ":")),
    }
    content = rsa_signing.sign_content(params, exclude=("sign", "sign_type"), skip_empty=False)
    params["sign"] = rsa_signing.rsa2_sign(key or fake.key, content)
    return urllib.parse.urlencode(params)


def _post_together(count, post):
    from django.test import Client

    answers = []

    def action():
        answers.append(post(Client()))

    return _run_together(count, action), answers


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_copies_of_a_wechat_result_notification_pay_once(notified, wechat):
    fake, adapter = wechat
    agent, withdrawal = _approved(method="wechat", account=OPENID)
    pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)  # accepted: paying
    transfer = fake.ledger.transfers[withdrawal.payout_no]
    body, headers = _wechat_notification(
        fake,
        fake.bill(transfer) | {"state": "SUCCESS", "transfer_amount": int(withdrawal.net_amount * 100)},
    )
    paid_before = merchant_account(AccountKind.PAYOUTS_PAID).balance

    errors, answers = _post_together(
        20, lambda client: client.post("/payouts/notify/wechat/", body, content_type="application/json", **headers)
    )

    assert errors == [] and sorted(answer.status_code for answer in answers) == [204] * 20
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == WithdrawalStatus.PAID
    assert _payouts_booked(withdrawal) == 1
    assert merchant_account(AccountKind.PAYOUTS_PAID).balance == paid_before + withdrawal.net_amount


@pytest.mark.django_db
def test_a_forged_or_mismatched_wechat_notification_is_refused_and_changes_nothing(notified, wechat, client):
    fake, adapter = wechat
    agent, withdrawal = _approved(method="wechat", account=OPENID)
    pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)
    bill = fake.bill(fake.ledger.transfers[withdrawal.payout_no]) | {"state": "FAIL", "fail_reason": "ACCOUNT_FROZEN"}
    forged_body, forged_headers = _wechat_notification(fake, bill, key=fake.forger)
    wrong_body, wrong_headers = _wechat_notification(fake, bill | {"transfer_amount": 1})

    forged = client.post("/payouts/notify/wechat/", forged_body, content_type="application/json", **forged_headers)
    wrong = client.post("/payouts/notify/wechat/", wrong_body, content_type="application/json", **wrong_headers)

    assert (forged.status_code, wrong.status_code) == (500, 500)
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == WithdrawalStatus.PAYING
    assert _available(agent) == FUNDS - Decimal("100.00")


@pytest.mark.django_db
def test_a_wechat_failure_notification_returns_the_funds(notified, wechat, client):
    fake, adapter = wechat
    agent, withdrawal = _approved(method="wechat", account=OPENID)
    pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)
    bill = fake.bill(fake.ledger.transfers[withdrawal.payout_no]) | {"state": "FAIL", "fail_reason": "ACCOUNT_FROZEN"}
    body, headers = _wechat_notification(fake, bill)

    answer = client.post("/payouts/notify/wechat/", body, content_type="application/json", **headers)

    failed = Withdrawal.objects.get(pk=withdrawal.pk)
    assert answer.status_code == 204
    assert failed.status == WithdrawalStatus.FAILED and "ACCOUNT_FROZEN" in failed.failure_reason
    assert _available(agent) == FUNDS


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_copies_of_an_alipay_result_notification_pay_once(notified, alipay):
    fake, adapter = alipay
    agent, withdrawal = _approved(account="13922222222")  # transferred, answer lost: paying
    pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)
    transfer = fake.ledger.transfers[withdrawal.payout_no]
    body = _alipay_notification(
        fake,
        {
            "out_biz_no": withdrawal.payout_no,
            "order_id": transfer.provider_no,
            "status": "SUCCESS",
            "trans_amount": f"{withdrawal.net_amount:.2f}",
            "biz_scene": "DIRECT_TRANSFER",
            "product_code": "TRANS_ACCOUNT_NO_PWD",
        },
    )
    post = lambda client: client.post(  # noqa: E731
        "/payouts/notify/alipay/", body, content_type="application/x-www-form-urlencoded"
    )

    errors, answers = _post_together(20, post)

    assert errors == [] and {answer.content.decode() for answer in answers} == {"success"}
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == WithdrawalStatus.PAID
    assert _payouts_booked(withdrawal) == 1 and fake.ledger.money_moves == 1


@pytest.mark.django_db
def test_an_alipay_notification_not_signed_by_alipay_is_refused(notified, alipay, client):
    fake, adapter = alipay
    agent, withdrawal = _approved(account="13922222222")
    pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)
    body = _alipay_notification(
        fake, {"out_biz_no": withdrawal.payout_no, "status": "FAIL", "order_id": "x"}, key=fake.forger
    )

    answer = client.post("/payouts/notify/alipay/", body, content_type="application/x-www-form-urlencoded")

    assert answer.content.decode() == "fail"
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == WithdrawalStatus.PAYING
    assert client.post("/payouts/notify/paypal/", body, content_type="text/plain").status_code == 404
