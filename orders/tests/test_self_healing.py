"""Self-healing on real servers (issue 26, ADR 0013): the test starts its own Redis on a free
port and a Celery worker under scripts/supervise.py, as ``make run`` does, pointed at that
Redis and the test database; it never touches the shared Redis.

Each test pays orders whose fulfil messages the worker holds unacknowledged (sent with a
countdown, so the worker reserves them and waits), then breaks something: Redis stopped and
started again, the worker killed with SIGKILL, the worker paused with SIGSTOP. Every paid order
must be completed within 30 s of the fault (of Redis's return), whatever became of its message.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.db import connection
from django.db.models import Max

from orders.models import Order, OrderStatus

from .factories import add_keys, buy, make_product, pay

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to start a private Redis"),
]

REPO = Path(__file__).resolve().parents[2]
TARGET_SECONDS = 30
ORDERS = 6


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own, without persistence (the worst case: a restart loses
    every queued and unacknowledged message)."""

    def __init__(self, directory: Path):
        self.port = _free_port()
        self.directory = directory
        self.process = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class SupervisedWorker:
    """scripts/supervise.py running one fulfilment worker, as scripts/run.sh starts it."""

    def __init__(self, directory: Path, redis_url: str, alive_within: float):
        self.alive = directory / "worker-fulfilment.alive"
        self.log = directory / "supervise.log"
        database = connection.settings_dict
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "kamen.settings.test",
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
            "REDIS_URL": redis_url,
            "KAMEN_WORKER_ALIVE_FILE": str(self.alive),
            "KAMEN_WORKER_STALE_SECONDS": "20",
            "PYTHONUNBUFFERED": "1",
        }
        if database.get("PASSWORD"):
            self.env["PGPASSWORD"] = database["PASSWORD"]
        self.env.pop("TEST_DATABASE_NAME", None)
        celery = str(Path(sys.executable).with_name("celery"))
        worker = (
            f"{celery} -A kamen worker --loglevel=INFO -Q fulfilment,default -n fulfilment-test-{os.getpid()}@%h"
            " --concurrency=2 --max-tasks-per-child=2000 --max-memory-per-child=307200"
            " --without-gossip --without-mingle --without-heartbeat"
        )
        self.argv = [
            sys.executable,
            str(REPO / "scripts" / "supervise.py"),
            "--program",
            f"worker-fulfilment={worker}",
            "--alive",
            f"worker-fulfilment={self.alive}:{alive_within}",
        ]
        self.process = None

    def start(self) -> None:
        self.handle = self.log.open("w")
        self.process = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=self.handle, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.handle.close()

    def worker_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"worker-fulfilment started \(pid (\d+)\)", self.log.read_text())]

    def wait_until_consuming(self, timeout: float = 45) -> None:
        """The watchdog writes the alive file with the time a heartbeat came back through the
        queue: the worker is connected and consuming."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.alive.exists() and '"consumed_at": null' not in self.alive.read_text():
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not consuming after {timeout} s:\n{self.log.read_text()[-3000:]}")


@pytest.fixture
def private_redis(tmp_path):
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def supervised_worker(tmp_path, private_redis):
    worker = SupervisedWorker(tmp_path, private_redis.url, alive_within=8)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def paid_orders(monkeypatch):
    """Paid orders whose fulfil messages are left to the test (sent to the private Redis)."""
    import orders.services.payments as payments

    monkeypatch.setattr(payments, "enqueue_after_commit", lambda *args, **kwargs: None)
    from riskcontrol.models import RiskRule

    RiskRule.objects.update(is_enabled=False)  # many orders from one address in a second
    product = make_product()
    add_keys(product, ORDERS)
    orders = []
    for number in range(ORDERS):
        order = buy(product, contact=f"buyer{number}@example.com")
        pay(order)
        orders.append(order.pk)
    assert Order.objects.filter(pk__in=orders, status=OrderStatus.PAID).count() == ORDERS
    return orders


def _hold_messages(redis_url: str, order_ids: list[int]) -> None:
    """Send each order's fulfil message with a countdown the outage outlasts: the worker
    reserves them at once and holds them unacknowledged until then."""
    app = Celery(broker=redis_url)
    for order_id in order_ids:
        app.send_task("orders.tasks.fulfil_order_task", kwargs={"order_id": order_id}, queue="fulfilment", countdown=50)
    app.close()


def _seconds_until_completed(order_ids: list[int], since: float, limit: float = TARGET_SECONDS + 15) -> float:
    """Wait until every order is completed; return when the last one was, in seconds after
    ``since`` (a ``time.time()``), from the orders' own ``completed_at``."""
    while time.time() - since < limit:
        completed = Order.objects.filter(pk__in=order_ids, status=OrderStatus.COMPLETED)
        if completed.count() == len(order_ids):
            last = completed.aggregate(last=Max("completed_at"))["last"]
            return last.timestamp() - since
        time.sleep(0.5)
    statuses = list(Order.objects.filter(pk__in=order_ids).values_list("status", flat=True))
    raise AssertionError(f"not all completed {limit:.0f} s after the fault: {statuses}")


def _wait_for(predicate, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(message)


def test_redis_restarted_while_the_worker_holds_messages_every_paid_order_is_completed(
    private_redis, supervised_worker, paid_orders
):
    # given a consuming worker holding every paid order's message unacknowledged, under the
    # fulfilment workers' own keys (their short visibility timeout; io's is left alone)
    supervised_worker.wait_until_consuming()
    _hold_messages(private_redis.url, paid_orders)
    client = redis.Redis.from_url(private_redis.url)
    _wait_for(lambda: client.hlen("unacked:fulfilment") == ORDERS, 15, "the worker did not reserve the messages")
    assert not client.exists("unacked")
    client.close()

    # when Redis stops (losing every message) and comes back 5 s later
    private_redis.stop()
    time.sleep(5)
    private_redis.start()
    back_at = time.time()

    # then every paid order is completed within 30 s of Redis's return
    seconds = _seconds_until_completed(paid_orders, since=back_at)
    print(f"redis restart: all {len(paid_orders)} paid orders completed {seconds:.1f} s after Redis returned")
    assert seconds <= TARGET_SECONDS
    # and the worker consumes again (the same process, or one its supervisor started)
    supervised_worker.alive.unlink()
    supervised_worker.wait_until_consuming(timeout=30)


def test_a_killed_worker_is_restarted_and_its_orders_completed(private_redis, supervised_worker, paid_orders):
    supervised_worker.wait_until_consuming()
    _hold_messages(private_redis.url, paid_orders)
    time.sleep(1)
    (first,) = supervised_worker.worker_pids()

    # when the worker's main process is killed with SIGKILL
    os.kill(first, signal.SIGKILL)
    killed_at = time.time()

    # then its supervisor logs why and starts another
    _wait_for(lambda: len(supervised_worker.worker_pids()) == 2, 15, "the supervisor did not restart the worker")
    assert f"worker-fulfilment (pid {first}) killed by SIGKILL" in supervised_worker.log.read_text()
    # and the orders its messages were for are completed within 30 s
    seconds = _seconds_until_completed(paid_orders, since=killed_at)
    print(f"kill -9: all {len(paid_orders)} paid orders completed {seconds:.1f} s after the kill")
    assert seconds <= TARGET_SECONDS


def test_a_paused_worker_is_detected_replaced_and_its_orders_completed(private_redis, supervised_worker, paid_orders):
    supervised_worker.wait_until_consuming()
    _hold_messages(private_redis.url, paid_orders)
    time.sleep(1)
    (first,) = supervised_worker.worker_pids()

    # when the worker is paused: alive to ps, consuming nothing
    os.kill(first, signal.SIGSTOP)
    paused_at = time.time()

    # then its stale heartbeat is noticed, it is killed and replaced
    _wait_for(lambda: len(supervised_worker.worker_pids()) == 2, 30, "the paused worker was not replaced")
    replaced_after = time.time() - paused_at
    assert "is not alive: heartbeat" in supervised_worker.log.read_text()
    # and its orders are completed within 30 s of the pause
    seconds = _seconds_until_completed(paid_orders, since=paused_at)
    print(f"SIGSTOP: replaced after {replaced_after:.1f} s, all orders completed {seconds:.1f} s after the pause")
    assert seconds <= TARGET_SECONDS


def test_a_worker_that_stops_consuming_exits_by_itself_and_is_replaced(private_redis, supervised_worker, paid_orders):
    """The Redis transport's known failure: the process lives, its consumer takes nothing
    more (celery/celery#10205). Simulated by cancelling every queue it consumes; its own
    watchdog must notice that heartbeats are accepted but never consumed, and exit."""
    supervised_worker.wait_until_consuming()
    (first,) = supervised_worker.worker_pids()
    app = Celery(broker=private_redis.url)
    hostname = f"fulfilment-test-{os.getpid()}@{socket.gethostname()}"
    for queue in ("fulfilment", "default", f"{hostname}.dq2"):
        app.control.cancel_consumer(queue, destination=[hostname], reply=True, timeout=5)
    app.close()
    stopped_at = time.time()
    _hold_messages(private_redis.url, paid_orders)

    _wait_for(lambda: len(supervised_worker.worker_pids()) == 2, 45, "the worker did not exit by itself")
    replaced_after = time.time() - stopped_at
    assert "exited with code" in supervised_worker.log.read_text() or "killed by" in supervised_worker.log.read_text()
    seconds = _seconds_until_completed(paid_orders, since=stopped_at)
    print(f"not consuming: replaced after {replaced_after:.1f} s, all orders completed {seconds:.1f} s after")
    assert seconds <= TARGET_SECONDS
