"""The Content-Security-Policy runs no inline script: the header says so on every kind of page,
and no template carries an inline <script>, an on*= handler or a javascript: link."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from .permission_world import build_world, client_for

ROOT = Path(settings.BASE_DIR)
TEMPLATE_DIRS = [ROOT / "templates", *sorted(ROOT.glob("*/templates"))]
TAG = re.compile(r"<[a-zA-Z][^>]*>", re.S)
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)
HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
JAVASCRIPT_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


def directives(policy: str) -> dict[str, list[str]]:
    return {name: sources for name, *sources in (part.split() for part in policy.split(";") if part.strip())}


def templates():
    for directory in TEMPLATE_DIRS:
        yield from sorted(directory.rglob("*.html"))


def test_no_template_has_inline_script_or_event_handlers():
    found = []
    for path in templates():
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT)
        found += [f"{name}: inline {match.group(0)}" for match in INLINE_SCRIPT.finditer(text)]
        found += [f"{name}: handler in {tag[:60]}" for tag in TAG.findall(text) if HANDLER.search(tag)]
        found += [f"{name}: {match.group(0)}" for match in JAVASCRIPT_URL.finditer(text)]
    assert found == [], "move these to static/kamen/js/ (the CSP blocks them):\n" + "\n".join(found)


def test_the_template_check_catches_what_it_looks_for():
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert not INLINE_SCRIPT.search("<script src=\"{% static 'kamen/js/x.js' %}\" defer></script>")
    assert HANDLER.search('<select id="s" onchange="this.form.submit()">')
    assert not HANDLER.search('<button type="button" class="copy" data-copy="x">')
    assert JAVASCRIPT_URL.search('<a href="javascript:void(0)">')


@pytest.mark.django_db
def test_pages_of_every_kind_send_a_policy_without_inline_script():
    world = build_world()
    pages = {
        "buyer": ["/", f"/products/{world.product.pk}/", "/query/", f"/orders/{world.buyer_order.order_no}/"],
        "agent": ["/agent/", "/agent/wallet/"],
        "owner": [
            "/admin/",
            "/admin/orders/order/",
            f"/console/imports/{world.card_key_import.pk}/",
            "/console/redeem/",
        ],
    }
    for role, paths in pages.items():
        client = client_for(role, world, Client)
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, path
            policy = directives(response["Content-Security-Policy"])
            assert policy["script-src"] == ["'self'"], path
            assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'self'"], path
