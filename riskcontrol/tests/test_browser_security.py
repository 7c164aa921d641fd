"""In chromium: the console and the 2FA enrolment render under the Content-Security-Policy
without a single violation, and the QR code shows."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_console_pages_render_under_the_csp(logged_in_page, live_server):
    page = logged_in_page
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )

    for path in ("/admin/", "/console/", "/security/2fa/setup/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"]

    assert page.locator("#two-factor-qr svg").is_visible()
    # The admin stylesheet applied: the header has its background colour.
    assert (
        page.evaluate(
            "getComputedStyle(document.querySelector('#header')).backgroundColor"
        )
        != "rgba(0, 0, 0, 0)"
    )
    assert violations == []
