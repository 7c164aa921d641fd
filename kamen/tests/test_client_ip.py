"""The buyer's address: X-Forwarded-For believed only from a trusted proxy, read from the right;
anything odd falls back to the connecting address, never to an error."""

import ipaddress
import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory, override_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kamen.client_ip import client_ip, parse_trusted_proxies

PROXY = "10.0.0.5"
BUYER = "203.0.113.7"
factory = RequestFactory()


def address(peer: str = PROXY, **headers) -> str | None:
    return client_ip(factory.get("/", REMOTE_ADDR=peer, **headers))


def test_without_trusted_proxies_a_forged_forwarded_for_is_ignored():
    assert address(peer=BUYER, HTTP_X_FORWARDED_FOR="1.2.3.4") == BUYER
    assert address(peer=BUYER, HTTP_X_REAL_IP="1.2.3.4") == BUYER


@override_settings(KAMEN_TRUSTED_PROXIES=["10.0.0.0/24"])
def test_from_an_untrusted_peer_the_header_is_ignored_even_when_proxies_are_set():
    assert address(peer="198.51.100.9", HTTP_X_FORWARDED_FOR="10.0.0.1, 1.2.3.4") == "198.51.100.9"


@override_settings(KAMEN_TRUSTED_PROXIES=["10.0.0.0/24", "2001:db8:cafe::/48"])
@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        (BUYER, BUYER),
        # What the buyer wrote on the left is not believed; the hop nginx appended is.
        (f"1.2.3.4, {BUYER}", BUYER),
        # Trusted hops (a CDN edge in the range, then the proxy) are skipped from the right.
        (f"1.2.3.4, {BUYER}, 10.0.0.9, 10.0.0.7", BUYER),
        (f"{BUYER}, 2001:db8:cafe::1", BUYER),
        ("2001:db8:1::77", "2001:db8:1::77"),
        ("[2001:db8:1::77]:51234", "2001:db8:1::77"),
        (f"{BUYER}:44321", BUYER),
        ("::ffff:203.0.113.7", BUYER),
        # Only trusted hops: a request from inside; the leftmost is where it started.
        ("10.0.0.9, 10.0.0.7", "10.0.0.9"),
    ],
)
def test_behind_a_trusted_proxy_the_first_untrusted_hop_from_the_right_is_the_buyer(forwarded_for, expected):
    assert address(HTTP_X_FORWARDED_FOR=forwarded_for) == expected


@override_settings(KAMEN_TRUSTED_PROXIES=[PROXY])
def test_x_real_ip_is_read_where_the_proxy_sends_only_that():
    assert address(HTTP_X_REAL_IP=BUYER) == BUYER
    assert address(HTTP_X_REAL_IP="garbage") == PROXY


@override_settings(KAMEN_TRUSTED_PROXIES=[PROXY])
@pytest.mark.parametrize(
    "forwarded_for",
    [
        "garbage",
        f"{BUYER}, not-an-address",
        "300.1.2.3",
        "[2001:db8::1",
        "2001:db8::1]:80",
        f"{BUYER}:99999",
        ", , ,",
        "1.2.3.4, " * 2000 + BUYER,  # hundreds of hops, far over the length limit
        "A" * 5000,
        "1.2.3.4, \x00\x01\r\n",
        "fe80::1%" + "x" * 300,
    ],
)
def test_a_malformed_header_falls_back_to_the_connecting_address(forwarded_for):
    assert address(HTTP_X_FORWARDED_FOR=forwarded_for) == PROXY


@override_settings(KAMEN_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_more_trusted_hops_than_a_real_chain_has_fall_back_to_the_connecting_address():
    assert address(HTTP_X_FORWARDED_FOR=", ".join(f"10.0.{n // 250}.{n % 250}" for n in range(40))) == PROXY


@override_settings(KAMEN_TRUSTED_PROXIES=["10.0.0.0/8"])
@hypothesis_settings(max_examples=300, deadline=None)
@given(header=st.text(max_size=300), real_ip=st.text(max_size=60))
def test_whatever_the_headers_say_the_answer_is_an_address_and_never_an_error(header, real_ip):
    request = factory.get("/", REMOTE_ADDR=PROXY)
    request.META["HTTP_X_FORWARDED_FOR"] = header
    request.META["HTTP_X_REAL_IP"] = real_ip

    answer = client_ip(request)

    assert answer is not None
    ipaddress.ip_address(answer)


def test_no_connecting_address_gives_none():
    request = factory.get("/")
    del request.META["REMOTE_ADDR"]

    assert client_ip(request) is None
    assert client_ip(None) is None


def test_a_bad_trusted_proxy_entry_is_refused_by_name():
    assert [str(network) for network in parse_trusted_proxies("10.0.0.0/8, 192.0.2.1,::1")] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "::1/128",
    ]
    with pytest.raises(ImproperlyConfigured, match="10.0.0.0/33"):
        parse_trusted_proxies(["10.0.0.0/33"])


@pytest.mark.django_db
@override_settings(KAMEN_TRUSTED_PROXIES=[PROXY])
@pytest.mark.parametrize("forwarded_for", ["garbage", "1.1.1.1," * 500, "[::1]:80:80", "x" * 10_000])
def test_malformed_headers_never_give_a_server_error(client, forwarded_for):
    for path in ("/", "/query/", "/healthz"):
        response = client.get(path, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)
        assert response.status_code < 500


# --- one reader ------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
READERS = re.compile(
    r"REMOTE_ADDR|HTTP_X_FORWARDED_FOR|HTTP_X_REAL_IP|[\"']x-forwarded-for[\"']|[\"']x-real-ip[\"']", re.IGNORECASE
)
SKIPPED_DIRECTORIES = {".venv", "node_modules", "staticfiles", "var", "tests", "bench", "migrations"}


def test_only_kamen_client_ip_reads_the_connecting_address_or_the_forwarding_headers():
    readers = []
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if SKIPPED_DIRECTORIES & set(relative.parts[:-1]) or relative.name == "conftest.py":
            continue
        if READERS.search(path.read_text(encoding="utf-8")):
            readers.append(str(relative))

    assert readers == ["kamen/client_ip.py"]
