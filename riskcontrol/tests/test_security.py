"""Hardening: lock-out after failed log-ins, TOTP two-factor, headers, body size, rate limits."""

import time

import pytest
from django.test import override_settings
from django.urls import reverse

from kamen import totp
from kamen.two_factor import _secret, start_enrolment
from kamen.models import StaffTwoFactor

pytestmark = pytest.mark.django_db

LIMITS = {
    "KAMEN_LOGIN_MAX_FAILURES_PER_USERNAME": 3,
    "KAMEN_LOGIN_MAX_FAILURES_PER_IP": 50,
}


# --- TOTP (RFC 6238) ----------------------------------------------------------------------------
def test_totp_matches_the_rfc_6238_sha1_test_vectors():
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"

    assert totp.totp(secret, now=59) == "287082"
    assert totp.totp(secret, now=1111111109) == "081804"
    assert totp.totp(secret, now=2000000000) == "279037"


def test_verify_accepts_one_step_of_drift_and_refuses_older_steps():
    secret = totp.new_secret()
    now = 1_700_000_000
    step = totp.current_step(now)

    assert totp.verify(secret, totp.hotp(secret, step - 1), now=now) == step - 1
    assert totp.verify(secret, totp.hotp(secret, step - 2), now=now) is None
    assert (
        totp.verify(secret, totp.hotp(secret, step), now=now, after_step=step) is None
    )
    assert totp.verify(secret, "12ab56", now=now) is None


# --- brute force -----------------------------------------------------------------------------------
@override_settings(**LIMITS)
def test_the_admin_login_locks_after_repeated_failures_even_with_the_right_password(
    client, staff_user
):
    for _attempt in range(3):
        assert (
            client.post(
                "/admin/login/", {"username": "operator", "password": "wrong"}
            ).status_code
            == 200
        )

    locked = client.post(
        "/admin/login/", {"username": "operator", "password": "kamen-test-pass"}
    )

    assert locked.status_code == 429
    assert "登录失败次数过多" in locked.content.decode()
    assert "_auth_user_id" not in client.session


@override_settings(**LIMITS)
def test_a_success_before_the_limit_clears_the_username_counter(client, staff_user):
    for _attempt in range(2):
        client.post("/admin/login/", {"username": "operator", "password": "wrong"})
    assert (
        client.post(
            "/admin/login/", {"username": "operator", "password": "kamen-test-pass"}
        ).status_code
        == 302
    )
    client.logout()

    for _attempt in range(2):
        client.post("/admin/login/", {"username": "operator", "password": "wrong"})

    assert (
        client.post(
            "/admin/login/", {"username": "operator", "password": "kamen-test-pass"}
        ).status_code
        == 302
    )


@override_settings(
    KAMEN_LOGIN_MAX_FAILURES_PER_USERNAME=100, KAMEN_LOGIN_MAX_FAILURES_PER_IP=3
)
def test_the_agent_login_locks_per_ip_across_usernames(client):
    for number in range(3):
        client.post("/agent/login/", {"username": f"guess{number}", "password": "x"})

    assert (
        client.post(
            "/agent/login/", {"username": "another", "password": "x"}
        ).status_code
        == 429
    )


# --- two-factor login --------------------------------------------------------------------------
def enrolled(user):
    device = start_enrolment(user=user)
    StaffTwoFactor.objects.filter(pk=device.pk).update(
        confirmed_at="2026-01-01T00:00:00Z"
    )
    return _secret(device)


def test_enrolment_shows_a_qr_and_confirms_with_a_code(client, staff_user):
    client.force_login(staff_user)

    page = client.get(reverse("two-factor-setup"))
    secret = _secret(StaffTwoFactor.objects.get(user=staff_user))
    wrong = client.post(
        reverse("two-factor-setup"),
        {"code": "000000" if totp.totp(secret) != "000000" else "111111"},
    )
    right = client.post(reverse("two-factor-setup"), {"code": totp.totp(secret)})

    assert page.status_code == 200 and "<svg" in page.content.decode()
    assert secret not in str(
        StaffTwoFactor.objects.filter(user=staff_user).values().first()
    )
    assert wrong.status_code == 400
    assert right.status_code == 302
    assert StaffTwoFactor.objects.get(user=staff_user).confirmed_at is not None


def test_after_the_password_the_console_asks_for_the_code(client, staff_user):
    secret = enrolled(staff_user)
    client.post(
        "/admin/login/", {"username": "operator", "password": "kamen-test-pass"}
    )

    gated = client.get("/admin/")
    verified = client.post(
        reverse("two-factor-verify"), {"code": totp.totp(secret), "next": "/admin/"}
    )
    console = client.get("/admin/")

    assert gated.status_code == 302 and gated["Location"].startswith(
        reverse("two-factor-verify")
    )
    assert verified.status_code == 302 and verified["Location"] == "/admin/"
    assert console.status_code == 200


def test_a_wrong_code_is_refused(client, staff_user):
    enrolled(staff_user)
    client.force_login(staff_user)

    response = client.post(reverse("two-factor-verify"), {"code": "abcdef"})

    assert response.status_code == 400 and "验证码不正确" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_a_code_cannot_be_replayed_within_its_step(
    client, staff_user, django_user_model
):
    secret = enrolled(staff_user)
    code = totp.totp(secret)
    client.force_login(staff_user)
    assert client.post(reverse("two-factor-verify"), {"code": code}).status_code == 302

    other = django_user_model.objects.get(pk=staff_user.pk)
    second = type(client)()
    second.force_login(other)
    replay = second.post(reverse("two-factor-verify"), {"code": code})

    assert replay.status_code == 400


def test_an_open_redirect_in_next_is_ignored(client, staff_user):
    secret = enrolled(staff_user)
    client.force_login(staff_user)

    response = client.post(
        reverse("two-factor-verify"),
        {"code": totp.totp(secret), "next": "https://evil.example/"},
    )

    assert response["Location"] == reverse("admin:index")


def test_staff_without_two_factor_pass_when_it_is_optional(client, staff_user):
    client.force_login(staff_user)

    assert client.get("/admin/").status_code == 200


@override_settings(KAMEN_STAFF_2FA_REQUIRED=True)
def test_staff_must_enrol_when_the_merchant_requires_it(client, staff_user):
    client.force_login(staff_user)

    assert client.get("/admin/")["Location"] == reverse("two-factor-setup")


# --- headers, sizes, rates -----------------------------------------------------------------------------
def test_pages_carry_the_security_headers(client):
    response = client.get("/agent/login/")

    policy = response["Content-Security-Policy"]
    assert (
        "default-src 'self'" in policy
        and "object-src 'none'" in policy
        and "frame-ancestors 'none'" in policy
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "kdid" in response.cookies and response.cookies["kdid"]["httponly"]


@override_settings(KAMEN_MAX_REQUEST_BYTES=1024)
def test_an_oversized_body_is_refused_before_it_is_read(client):
    response = client.post("/agent/login/", {"username": "x" * 4000, "password": "y"})

    assert response.status_code == 413
    assert "请求内容过大" in response.content.decode()


@override_settings(KAMEN_RATE_LIMITS=[("login", r"^/agent/login/$", ("POST",), 2, 60)])
def test_the_rate_limit_answers_429_past_the_limit(client):
    codes = [
        client.post("/agent/login/", {"username": "a", "password": "b"}).status_code
        for _n in range(3)
    ]

    assert codes[-1] == 429 and codes[0] != 429


def test_the_device_cookie_cannot_be_forged(client, product):
    from django.test import RequestFactory

    from riskcontrol.fingerprint import COOKIE_NAME, device_from_request

    request = RequestFactory().get("/", HTTP_USER_AGENT="UA")
    request.COOKIES[COOKIE_NAME] = "deadbeefdeadbeef"

    assert device_from_request(request).device_id == ""
    assert time.time() > 0
