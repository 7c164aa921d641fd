"""`make run` on a fresh machine: no DATABASE_URL, no REDIS_URL, no PostgreSQL installed. The
embedded default starts its private PostgreSQL under var/postgres (kamen/private_postgres.py,
docs/adr/0016), migrates, loads the demo, serves, and sells a card key through the sandbox
gateway; Ctrl-C stops it all; a second run after everything was killed -9 (a stale
postmaster.pid) starts again on the same data."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from bench.soak import Buyer
from kamen import private_postgres

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


def _free_port() -> int:
    for _ in range(50):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 10000
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-29999")


def _fresh_machine_env(var: Path, port: int) -> dict:
    """This environment without the real mode's settings and without PostgreSQL's programs on
    PATH (the wheel's are used, whatever the machine has)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {"DATABASE_URL", "REDIS_URL", "KAMEN_ENCRYPTION_KEYS", "KAMEN_BLIND_INDEX_KEY", "TEST_DATABASE_NAME"}
        and not key.startswith("KAMEN_")
    }
    path = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry and not (Path(entry) / "initdb").exists()]
    return env | {
        "PATH": os.pathsep.join(path),
        "DJANGO_SETTINGS_MODULE": "kamen.settings.base",
        "KAMEN_VAR_DIR": str(var),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "VENV": str(VENV),
        "WEB_WORKERS": "1",
    }


class MakeRun:
    started: list["MakeRun"] = []

    def __init__(self, var: Path, log: Path):
        self.started.append(self)
        self.port = _free_port()
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=_fresh_machine_env(var, self.port),
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,  # its own group, as a terminal's
            )  # fmt: skip

    def wait_until_serving(self, seconds: float = 240) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if Buyer(self.port, 0).request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"make run did not serve in {seconds} s:\n{self.log.read_text()[-3000:]}")

    def signal_group(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)


def _value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


def _buy_a_card_key(port: int, product_id: int, number: int) -> tuple[Buyer, str]:
    """Product page, checkout, the sandbox cashier's 支付成功; returns the buyer and the order
    number once status.json says delivered."""
    buyer = Buyer(port, number)
    status, page, _ = buyer.request("GET", f"/products/{product_id}/")
    assert status == 200
    form = {
        "csrfmiddlewaretoken": _value(page, "csrfmiddlewaretoken"),
        "checkout_token": _value(page, "checkout_token"),
        "quantity": "1",
        "contact": f"embedded{number}@example.com",
        "query_password": "embedded-1234",
    }
    status, _, cashier = buyer.request("POST", f"/buy/{product_id}/", form)
    assert status == 302 and "/pay/sandbox/" in cashier, (status, cashier)
    status, page, _ = buyer.request("GET", cashier)
    assert status == 200
    status, _, order_page = buyer.request(
        "POST", cashier, {"csrfmiddlewaretoken": _value(page, "csrfmiddlewaretoken"), "action": "pay"}
    )
    order_no = re.search(r"/orders/([^/]+)/", order_page).group(1)
    deadline = time.monotonic() + 30
    while not json.loads(buyer.request("GET", f"/orders/{order_no}/status.json")[1]).get("delivered"):
        assert time.monotonic() < deadline, f"order {order_no} not delivered"
        time.sleep(0.2)
    return buyer, order_no


def _query(var: Path, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(**_connection(var)) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    connection.close()
    return rows


def _connection(var: Path) -> dict:
    settings = private_postgres.database_settings(var)
    return {"host": settings["HOST"], "port": settings["PORT"], "dbname": settings["NAME"], "user": settings["USER"]}


def _card_keys_delivered(var: Path, order_no: str) -> list[str]:
    return [
        status
        for (status,) in _query(
            var,
            "SELECT k.status FROM orders_orderdelivery d JOIN orders_order o ON o.id = d.order_id "
            "JOIN catalog_cardkey k ON k.id = d.card_key_id WHERE o.order_no = %s AND NOT d.is_voided",
            [order_no],
        )
    ]


@pytest.fixture
def var():
    """A var/ for this run. Not under pytest's tmp_path: as root that is closed to others
    (/tmp/pytest-of-root, 0700), and the server runs as nobody."""
    directory = Path(tempfile.mkdtemp(prefix="kamen-embedded-"))
    directory.chmod(0o755)
    yield directory / "var"
    while MakeRun.started:  # a failed test leaves nothing running
        run = MakeRun.started.pop()
        if run.process.poll() is None:
            run.signal_group(signal.SIGKILL)
            run.process.wait(10)
    private_postgres.stop(directory / "var")
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
def test_make_run_embedded_starts_from_scratch_sells_a_card_key_and_survives_kill_9(var):
    log = var.parent / "run.log"

    # given a fresh checkout: no var/, no DATABASE_URL, no REDIS_URL, no PostgreSQL on PATH
    first = MakeRun(var, log)
    first.wait_until_serving()
    assert "created a private PostgreSQL cluster" in log.read_text()
    assert (var / "postgres" / "data" / "PG_VERSION").exists()
    assert not list(var.glob("*.sqlite3"))

    # when a buyer buys a card key and pays at the sandbox cashier
    (product_id,) = _query(
        var,
        "SELECT p.id FROM catalog_product p WHERE p.product_type = 'card_key' AND p.is_on_shelf "
        "AND EXISTS (SELECT 1 FROM catalog_cardkey k WHERE k.product_id = p.id AND k.status = 'available') "
        "ORDER BY p.id LIMIT 1",
    )[0]
    buyer, order_no = _buy_a_card_key(first.port, product_id, 1)

    # then the card key is delivered, once, from the private PostgreSQL
    assert _card_keys_delivered(var, order_no) == ["sold"]
    assert buyer.request("GET", f"/orders/{order_no}/")[0] == 200

    # when everything is killed -9 (the server too: it runs in its own session)
    server_pid = private_postgres.running_pid(var)
    assert server_pid is not None
    first.signal_group(signal.SIGKILL)
    first.process.wait(10)
    os.kill(server_pid, signal.SIGKILL)
    time.sleep(0.2)
    assert (var / "postgres" / "data" / "postmaster.pid").exists()  # stale

    # then a second make run starts on the same data and sells again
    first_run_output = len(log.read_text())
    second = MakeRun(var, log)
    second.wait_until_serving()
    second_run_output = log.read_text()[first_run_output:]
    assert "private PostgreSQL started" in second_run_output
    assert "created a private PostgreSQL cluster" not in second_run_output
    buyer.port = second.port  # the same buyer (cookies, address), the new server
    assert json.loads(buyer.request("GET", f"/orders/{order_no}/status.json")[1])["delivered"]
    _, again = _buy_a_card_key(second.port, product_id, 2)
    assert _card_keys_delivered(var, again) == ["sold"]

    # and Ctrl-C stops the web server, the scheduler and the database
    server_pid = private_postgres.running_pid(var)
    second.signal_group(signal.SIGINT)
    second.process.wait(60)
    assert private_postgres.running_pid(var) is None
    assert not (var / "postgres" / "data" / "postmaster.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
    assert "Database: private PostgreSQL stopped." in log.read_text()
