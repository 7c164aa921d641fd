"""The links make run prints after the demo logins point where the site is reached (SITE_URL,
which run.sh sets from HOST and PORT unless given), not at the address gunicorn binds."""

from io import StringIO

from orders.management.commands.load_demo_data import Command


def test_the_printed_links_use_the_sites_address(settings, monkeypatch):
    # given make run listening on every interface, the site reached as shop.lan
    monkeypatch.setenv("HOST", "0.0.0.0")  # noqa: S104 (the address make run is given)
    monkeypatch.setenv("PORT", "8000")
    settings.SITE_URL = "http://shop.lan:8000"

    out = StringIO()
    Command(stdout=out)._print_logins()

    text = out.getvalue()
    assert "  Shop:              http://shop.lan:8000/" in text
    assert "http://shop.lan:8000/agent/" in text and "http://shop.lan:8000/query/" in text
    assert "0.0.0.0" not in text  # noqa: S104
