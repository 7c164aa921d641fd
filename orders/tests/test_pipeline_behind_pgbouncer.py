"""Two hosts' worth of processes against one PostgreSQL through PgBouncer in transaction mode
(issue 15 §4, docs/adr/0015-beyond-one-machine.md): two gunicorn web processes on their own
ports, two Celery workers and two beats (one holds the scheduler's lock), all configured as
docker compose configures them (DATABASE_POOLED, DATABASE_DIRECT_URL), PgBouncer with two
server connections for all of them, a throwaway Redis. Buyers come through a distributor's
referral link to either web process: product page, checkout, the sandbox cashier with its own
notifications (some with a wrong amount), the order page polled until the keys show (the HTTP
storm's client, bench/http_storm.py). Then the invariants: every buyer got keys, no key sold
twice, no order paid twice or for a wrong amount, every order's commissions written once, the
ledger balanced, no 5xx, and the traffic really went through the pooler."""

import asyncio
import concurrent.futures
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count

from bench.pgbouncer import INSTALL_HINT, pgbouncer_binary, start_pgbouncer

from .test_redis_outage import ThrowawayRedis, _free_port, _wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(pgbouncer_binary() is None, reason=INSTALL_HINT),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ORDERS_PER_HOST = 20
BUYERS_PER_HOST = 5


class Host:
    """One host's web process, Celery worker (every queue) and beat, as docker compose runs them."""

    def __init__(self, name: str, directory: Path, environment: dict):
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.directory = directory / name
        self.directory.mkdir()
        self.environment = environment | {
            "SITE_URL": self.base_url,  # the sandbox gateway notifies this host's web
            "KAMEN_VAR_DIR": str(self.directory),
            "MEDIA_ROOT": str(self.directory / "media"),
        }
        self.name = name
        self.processes: list[subprocess.Popen] = []

    def _start(self, label: str, argv: list[str]) -> None:
        log = open(self.directory / f"{label}.log", "wb")  # noqa: SIM115 — kept open for the process's life
        self.processes.append(
            subprocess.Popen(argv, cwd=ROOT, env=self.environment, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        )

    def start(self) -> None:
        self._start("web", [str(BIN / "gunicorn"), "kamen.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", "1",
                            "--worker-class", "gthread", "--threads", "4", "--timeout", "60",
                            "--log-level", "warning", "--no-control-socket"])  # fmt: skip
        self._start("worker", [str(BIN / "celery"), "-A", "kamen", "worker", "-Q", "fulfilment,default,io",
                               "-n", f"{self.name}@%h", "--concurrency", "2", "--loglevel", "WARNING",
                               "--without-gossip", "--without-mingle", "--without-heartbeat"])  # fmt: skip
        self._start("beat", [str(BIN / "celery"), "-A", "kamen", "beat", "--loglevel", "WARNING",
                             f"--schedule={self.directory / 'celerybeat-schedule'}"])  # fmt: skip

    def wait_until_answering(self) -> None:
        url = f"{self.base_url}/healthz"
        _wait_for(lambda: urllib.request.urlopen(url, timeout=2).close(), 90)  # noqa: S310 — http://127.0.0.1 only

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def errors(self) -> list[str]:
        found = []
        for log in self.directory.glob("*.log"):
            found += [
                line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line or "ERROR" in line
            ]
        return found


@pytest.fixture
def two_hosts():
    database = connection.settings_dict
    user, name = database["USER"], database["NAME"]
    host, port = database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)
    pooler = start_pgbouncer(server_host=host, server_port=port, user=user, pool_size=2)
    directory = Path(__import__("tempfile").mkdtemp(prefix="kamen-two-hosts-"))
    redis = ThrowawayRedis(directory)
    redis.start()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DATABASE_")}
    environment.pop("TEST_DATABASE_NAME", None)
    environment |= {
        "DJANGO_SETTINGS_MODULE": "kamen.settings.base",
        "DATABASE_URL": pooler.url(user=user, name=name),
        "DATABASE_POOLED": "1",
        "DATABASE_DIRECT_URL": f"postgres://{user}@{host}:{port}/{name}",
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "SECRET_KEY": settings.SECRET_KEY,
        "SANDBOX_GATEWAY_SECRET": settings.SANDBOX_GATEWAY_SECRET,
        "LOG_LEVEL": "WARNING",
    }
    if database.get("PASSWORD"):
        environment["PGPASSWORD"] = database["PASSWORD"]
    hosts = [Host("host-a", directory, environment), Host("host-b", directory, environment)]
    try:
        for each in hosts:
            each.start()
        for each in hosts:
            each.wait_until_answering()
        yield hosts, pooler
    finally:
        for each in hosts:
            each.stop()
        redis.stop()
        pooler.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _referred_storm_class():
    from bench.http_storm import Storm, _call

    class ReferredStorm(Storm):
        """The storm's buyer, arriving through a distributor's link (so every order splits)."""

        link_code: str = ""

        async def _flow(self, session, number: int) -> None:
            url = f"{self.base_url}/r/{self.link_code}/p/{self.product_id}/"
            response, _body = await _call(session, self.tally, "GET", url, expect=(302,))
            await _call(session, self.tally, "GET", self.base_url + response.headers["Location"], expect=(200,))
            await super()._flow(session, number)

    return ReferredStorm


def test_two_web_processes_and_two_workers_through_pgbouncer_sell_each_key_once(two_hosts):
    from bench.http_storm import Tally, _check_invariants, _drive, _product, _with_gateway_sessions
    from bench.pipeline import _referral_link
    from commissions.models import Commission
    from commissions.selectors import ledger_differences
    from orders.gateways.sandbox import signed_body
    from orders.models import Order, OrderStatus

    hosts, pooler = two_hosts
    orders = ORDERS_PER_HOST * len(hosts)
    product = _product(71, orders, lean=False)
    link_code = _referral_link(71)
    tally = Tally()
    storm_class = _referred_storm_class()
    storms = []
    for index, each in enumerate(hosts):
        storm = storm_class(
            base_url=each.base_url, product_id=product.pk, run=60 + index, lean=False, tally=tally,
            gateway_sessions=[], sign=signed_body, app_id=settings.SANDBOX_GATEWAY_APP_ID, rng=random.Random(index),
        )  # fmt: skip
        storm.link_code = link_code
        storms.append(storm)

    async def work(sessions):
        for storm in storms:
            storm.gateway_sessions = sessions
        await asyncio.gather(*(_drive(storm, orders=ORDERS_PER_HOST, buyers=BUYERS_PER_HOST) for storm in storms))

    started = time.monotonic()
    # A thread of its own: a browser test earlier in the run (Playwright's sync API) can leave
    # an event loop running in this one, and asyncio.run refuses to nest.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _with_gateway_sessions(work)).result()
    elapsed = time.monotonic() - started

    assert tally.failures == []
    assert tally.completed == orders
    assert tally.server_errors == 0, tally.statuses
    checked = _check_invariants(product, tally)
    assert checked["problems"] == [] and checked["held_for_review"] == 0
    sold = Order.objects.filter(product=product)
    assert sold.filter(status=OrderStatus.COMPLETED).count() == orders
    per_order = Commission.objects.filter(order__in=sold).values("order_id").annotate(rows=Count("id"))
    assert sorted({row["rows"] for row in per_order}) == [3] and len(per_order) == orders
    books = ledger_differences()
    assert books["accounts"] == [] and books["transactions"] == []
    assert books["transaction_count"] >= orders
    # Through the pooler, on its two server connections, never more.
    pool = next(row for row in pooler.show("POOLS", user=connection.settings_dict["USER"])
                if row["database"] == connection.settings_dict["NAME"])  # fmt: skip
    stats = next(row for row in pooler.show("STATS", user=connection.settings_dict["USER"])
                 if row["database"] == connection.settings_dict["NAME"])  # fmt: skip
    print(
        f"{tally.completed} orders in {elapsed:.1f} s through pgbouncer {pooler.version}: "
        f"{stats['total_xact_count']} transactions, {stats['total_query_count']} statements on 2 server connections"
    )
    assert pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] + pool["sv_tested"] + pool["sv_login"] <= 2
    assert stats["total_xact_count"] > orders * 10
    assert [host.errors() for host in hosts] == [[], []]
