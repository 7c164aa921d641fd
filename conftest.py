import pytest


@pytest.fixture(autouse=True)
def default_language():
    """Every test starts in the shop's default language, whatever an earlier test activated."""
    from django.utils import translation

    translation.activate("zh-hans")
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def fresh_risk_rules():
    """The merchant's risk rules are cached per process for a few seconds; tests that change
    them with ``update()`` (no post_save) must not meet the rules an earlier test cached."""
    from riskcontrol.rules import clear_rule_cache

    clear_rule_cache()
    yield


@pytest.fixture
def staff_user(db, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="operator", password="kamen-test-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    return user


@pytest.fixture
def owner_user(db, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="owner", password="kamen-test-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="owner"))
    return user


# --- Browser tests: Playwright's Python package driving Debian's chromium --------------------
CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser():
    import os

    if not os.path.exists(CHROMIUM_PATH):
        if os.environ.get("KAMEN_REQUIRE_BROWSER") == "1":
            pytest.fail("Browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    # Playwright's sync API refuses to run inside an asyncio loop; Django's async-unsafe check
    # trips on its thread, so allow it for the test process only.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def logged_in_page(page, live_server, staff_user):
    """A chromium page logged in to the merchant console as an operator."""
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", staff_user.username)
    page.fill("#id_password", "kamen-test-pass")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    return page


@pytest.fixture(autouse=True)
def site_url_is_the_live_server(request, settings):
    """In a test with a live server, that server is the site: links built from SITE_URL (the
    gateway's return URL, posters, e-mails) must lead back to it."""
    if "live_server" in request.fixturenames:
        settings.SITE_URL = request.getfixturevalue("live_server").url
