"""A merchant logs in to the console in Chinese and switches it to English, in a real browser."""

import pytest


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_console_login_in_chinese_then_english(page, live_server, staff_user):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", staff_user.username)
    page.fill("#id_password", "kamen-test-pass")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")

    assert page.locator("#site-name").inner_text() == "Kamen 商户后台"
    assert page.get_by_role("heading", name="常用操作").is_visible()

    with page.expect_navigation():
        page.select_option("#language-select", "en")

    assert page.locator("#site-name").inner_text() == "Kamen merchant console"
    assert page.get_by_role("heading", name="Shortcuts").is_visible()
    assert page.get_by_role("heading", name="Business overview").is_visible()
