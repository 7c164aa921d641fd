"""The buyer's real path, measured from outside over HTTP (issue 15 §1).

``scripts/run.sh`` starts the real-mode stack exactly as ``make run`` does (gunicorn, the Celery
workers and beat, the RQ worker) against the benchmark's PostgreSQL database and a Redis
database of its own, on a free port; the benchmark waits until it answers, drives it with a
lean asyncio client (aiohttp) and stops the whole process group at the end.

Two flows, each order a different buyer (own loopback address 127.x.y.z, own cookies, so the
per-IP and per-device limits and risk rules see what they would see from real buyers):

- **storm** (``BUYERS`` at once, ``ORDERS`` in all): product page, checkout form (CSRF token and
  one-time checkout token), the sandbox gateway's cashier, 支付成功 there, whose notifications
  (some repeated, some stale, as the sandbox sends them) the Celery worker delivers to Kamen;
  a share of orders first receive a correctly signed notification with a wrong amount, which
  must be refused; then the order page, polled through its status endpoint as the page's
  script does, until the keys show. ``buyer_wait_*`` is checkout to keys on the page.
- **lean** (``LEAN_BUYERS`` at once, ``LEAN_ORDERS``): product page, checkout, cashier page, ONE
  signed notification posted by the client (from a few gateway addresses), the order page
  polled until the key shows.

``http_server_cpu_ms_per_order``: CPU of everything ``run.sh`` started (web, workers, beat, their
children) and of the PostgreSQL backends serving the benchmark database, read from /proc, from
the start of the flow until the queues are drained, divided by completed orders. The client's
own CPU is reported apart (it shares the machine, so the rate depends on it; the CPU per order
does not). At the end the invariants are checked: every paid order completed, no card key on
two orders, no wrong amount accepted, every order paid once.

**Through a reverse proxy** (issue 25 §4): the storm flow also runs through nginx
(bench/reverse_proxy.py: Debian's package, started by the bench on a loopback port, nothing of
the system's), the stack trusting it (``KAMEN_TRUSTED_PROXIES=127.0.0.1``): each buyer still
connects from its own 127.x.y.z, which nginx appends to ``X-Forwarded-For``. The proxy runs
alternate with the direct ones on the same stack (the direct buyers are never 127.0.0.1, so
the setting changes nothing for them), so ``http_proxy_orders_ratio`` compares like with like
on a shared machine. Kamen must still see every buyer apart: ``http_proxy_429`` (answers 429
to buyers or notifications) stays 0 and ``http_proxy_held_for_review`` (orders checkout sent to
risk review, per run) no higher than ``http_held_for_review``. ``--proxy-repeats N`` (default
1, as ``make bench`` runs it), ``--no-proxy`` to leave it out; without nginx the bench says how
to install it and reports no proxy figures.

Alone: ``python -m bench pgbench http_storm --orders 200`` (``--buyers``, ``--lean-orders``,
``--lean-buyers``, ``--proxy-repeats``, ``--no-proxy``, or BENCH_HTTP_* in the environment).
"""

import asyncio
import contextlib
import html
import json
import os
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

BUYERS = int(os.environ.get("BENCH_HTTP_BUYERS", "100"))
ORDERS = int(os.environ.get("BENCH_HTTP_ORDERS", "1000"))
LEAN_BUYERS = int(os.environ.get("BENCH_HTTP_LEAN_BUYERS", "50"))
LEAN_ORDERS = int(os.environ.get("BENCH_HTTP_LEAN_ORDERS", str(ORDERS)))
REPEATS = os.environ.get("BENCH_HTTP_REPEATS", "")  # default: the bench's repeats
PROXY = os.environ.get("BENCH_HTTP_PROXY", "1") not in ("", "0", "no", "false")
PROXY_REPEATS = int(os.environ.get("BENCH_HTTP_PROXY_REPEATS", "1"))
# The proxied runs' buyers: addresses (and products) apart from the direct runs' ones.
PROXY_RUN_OFFSET = 50
WRONG_AMOUNT_SHARE = float(os.environ.get("BENCH_HTTP_WRONG_AMOUNT_SHARE", "0.05"))
STARTUP_SECONDS = 180
ORDER_TIMEOUT_SECONDS = 120
# The order page's script (static/kamen/js/order-page.js) polls status.json first after
# FIRST_POLL_SECONDS, then every POLL_SECONDS for the page's first FAST_POLL_FOR_SECONDS, then
# 1 s further apart each time up to SLOWEST_POLL_SECONDS; it changes its status line in place
# when the order is paid (or delivering, or waiting for stock) and reloads when the number of
# deliveries changes or the order ends; either starts the schedule again: the client does the same.
# BENCH_HTTP_POLL="0.5,1" (two values: every second, no back-off) replays the previous page.
_POLL = [float(value) for value in os.environ.get("BENCH_HTTP_POLL", "0.5,1,10,5").split(",")]
FIRST_POLL_SECONDS, POLL_SECONDS = _POLL[0], _POLL[1]
FAST_POLL_FOR_SECONDS = _POLL[2] if len(_POLL) > 2 else float("inf")
SLOWEST_POLL_SECONDS = _POLL[3] if len(_POLL) > 3 else POLL_SECONDS
# Below gunicorn's keep-alive (2 s): the client closes an idle connection before the server does.
KEEPALIVE_SECONDS = 1.5
GATEWAY_ADDRESSES = [f"127.9.0.{number}" for number in range(1, 9)]
PRICE = Decimal("10.00")

TARGETS = {
    "http_server_cpu_ms_per_order": ("<=", 40),
    "http_lean_cpu_ms_per_order": ("<=", 25),
    "buyer_wait_p95_s": ("<=", 3),
    "http_5xx": ("<=", 0),
    "http_proxy_429": ("<=", 0),
    "http_proxy_5xx": ("<=", 0),
    "http_proxy_orders_ratio": (">=", 0.9),
    "http_proxy_held_over_direct": ("<=", 0),
}

ROOT = Path(__file__).resolve().parent.parent
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CHECKOUT_TOKEN_RE = re.compile(r'name="checkout_token" value="([^"]+)"')
ORDER_NO_RE = re.compile(r"\bK\d{21}\b")
STATUS_URL_RE = re.compile(r'data-status-url="([^"]+)"')
USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36 storm/{number}"
)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


# --- the stack -------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _database_url(settings: dict) -> str:
    from urllib.parse import quote

    credentials = quote(settings.get("USER") or "", safe="")
    if settings.get("PASSWORD"):
        credentials += ":" + quote(settings["PASSWORD"], safe="")
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or "5432"
    return f"postgres://{credentials}@{host}:{port}/{settings['NAME']}"


def _stack_redis_url() -> str:
    from django.conf import settings

    return os.environ.get("BENCH_HTTP_REDIS_URL") or settings.REDIS_URL


# The fulfilment worker may keep its messages in keys of its own (":fulfilment", ADR 0013).
UNACKED_KEYS = ["unacked", "unacked:fulfilment"]
CELERY_QUEUE_KEYS = [
    "celery", "fulfilment", "io", "default", *UNACKED_KEYS,
    "unacked_index", "unacked_mutex", "unacked_index:fulfilment", "unacked_mutex:fulfilment",
]  # fmt: skip


def _empty_celery_queues(redis_url: str) -> None:
    """The stack's Redis database is the benchmark's own: tasks left by an earlier, interrupted
    run (ids of a dropped database) must not run in this one."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(*CELERY_QUEUE_KEYS)
    client.close()


@dataclass
class Stack:
    process: subprocess.Popen
    base_url: str
    log_path: Path
    var_dir: tempfile.TemporaryDirectory

    def stop(self) -> None:
        """The whole process group (run.sh, gunicorn, the workers, beat and their children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.var_dir.cleanup()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def start_stack(*, database_settings: dict, redis_url: str, sandbox_secret: str, trusted_proxies: str = "") -> Stack:
    port = _free_port()
    var_dir = tempfile.TemporaryDirectory(prefix="kamen-storm-")
    log_path = Path(var_dir.name) / "stack.log"
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(database_settings),
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "kamen.settings.base",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "VENV": sys.prefix,
        "KAMEN_VAR_DIR": var_dir.name,
        "MEDIA_ROOT": str(Path(var_dir.name) / "media"),
        # Rate-limit counters of an earlier run in the same minute must not count here.
        "CACHE_KEY_PREFIX": f"kamen-storm-{os.getpid()}-{int(time.time())}",
        "SANDBOX_GATEWAY_SECRET": sandbox_secret,
        "LOG_LEVEL": os.environ.get("BENCH_HTTP_LOG_LEVEL", "WARNING"),
        "KAMEN_TRUSTED_PROXIES": trusted_proxies,
    }
    environment.pop("TEST_DATABASE_NAME", None)
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(  # noqa: S603 (our own script)
        [str(ROOT / "scripts" / "run.sh")],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped as a whole
    )
    log.close()
    stack = Stack(process=process, base_url=f"http://127.0.0.1:{port}", log_path=log_path, var_dir=var_dir)
    try:
        _wait_until_answering(stack)
    except BaseException:
        print(_log_tail(stack))
        stack.stop()
        raise
    return stack


def _log_tail(stack: Stack, lines: int = 40) -> str:
    try:
        text = stack.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(["--- the stack's log, last lines ---", *text[-lines:]])


def _wait_until_answering(stack: Stack) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise RuntimeError(f"scripts/run.sh exited with {stack.process.returncode} before answering")
        try:
            with urllib.request.urlopen(stack.base_url + "/healthz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the stack did not answer within {STARTUP_SECONDS} s")


# --- CPU, from /proc ---------------------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _role(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().decode(errors="replace").split("\0")
    except OSError:
        return "other"
    text = " ".join(words)
    if "gunicorn" in text:
        return "web"
    if "celery" in text and " beat" in text:
        return "beat"
    if "celery" in text:
        return "celery io" if "-Q io" in text else "celery"
    if "rqworker" in text:
        return "rq"
    return "other"


class CpuMeter:
    """CPU seconds of the stack's process tree (children included: a reaped child's time is in
    its parent's cutime/cstime) and of the PostgreSQL backends of the stack's database.

    Backends come and go, so a thread samples them every ``interval``: one that is gone keeps
    its last reading; one born during the measure counts from zero."""

    def __init__(self, *, root_pid: int, database: str, interval: float = 0.25):
        self.root_pid, self.database, self.interval = root_pid, database, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._roles: dict[int, str] = {}
        self.backends_start: dict[int, float] = {}
        self.backends_last: dict[int, float] = {}
        self.tree_start: dict[str, float] = {}
        self.tree_end: dict[str, float] = {}

    def _tree(self) -> dict[str, float]:
        children = _children_of()
        totals: dict[str, float] = {}
        pending = [self.root_pid]
        while pending:
            pid = pending.pop()
            pending.extend(children.get(pid, []))
            fields = _stat(pid)
            if fields is None:
                continue
            role = self._roles.get(pid) or self._roles.setdefault(pid, _role(pid))
            ticks = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
            totals[role] = totals.get(role, 0.0) + ticks / CLOCK_TICKS
        return totals

    def _backend_pids(self, cursor) -> list[int]:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [self.database]
        )
        return [pid for (pid,) in cursor.fetchall()]

    def _sample_backends(self, cursor, *, first: bool = False) -> None:
        for pid in self._backend_pids(cursor):
            fields = _stat(pid)
            if fields is None:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            if pid not in self.backends_start:
                self.backends_start[pid] = seconds if first else 0.0
            self.backends_last[pid] = seconds

    def start(self) -> None:
        import psycopg
        from django.db import connection

        settings = connection.settings_dict
        self._connection = psycopg.connect(
            dbname=settings["NAME"],
            user=settings.get("USER") or None,
            password=settings.get("PASSWORD") or None,
            host=settings.get("HOST") or None,
            port=settings.get("PORT") or None,
        )
        self._connection.autocommit = True
        with connection.cursor() as own:
            own.execute("SELECT pg_backend_pid()")
            self._exclude = {own.fetchone()[0]}
        cursor = self._connection.cursor()
        self._sample_backends(cursor, first=True)
        for pid in self._exclude:
            self.backends_start.pop(pid, None)
        self.tree_start = self._tree()
        self._thread = threading.Thread(target=self._run, args=(cursor,), daemon=True, name="storm-cpu")
        self._thread.start()

    def _run(self, cursor) -> None:
        while not self._stop.wait(self.interval):
            self._sample_backends(cursor)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample_backends(self._connection.cursor())
        self.tree_end = self._tree()
        self._connection.close()
        used = {role: self.tree_end.get(role, 0.0) - self.tree_start.get(role, 0.0) for role in self.tree_end}
        used["postgres"] = sum(
            self.backends_last[pid] - self.backends_start[pid] for pid in self.backends_last if pid not in self._exclude
        )
        return used


class Profiler:
    """``BENCH_HTTP_PROFILE=DIR``: py-spy samples the web workers and the Celery pool during the
    measured flow; one collapsed-stack file per process in DIR (read them with
    ``python -m bench.profile_stacks DIR``)."""

    def __init__(self, *, root_pid: int, directory: str, label: str):
        self.root_pid, self.directory, self.label = root_pid, Path(directory), label
        self.recorders: list[subprocess.Popen] = []

    def start(self) -> None:
        import shutil

        py_spy = shutil.which("py-spy") or str(Path(sys.prefix) / "bin" / "py-spy")
        self.directory.mkdir(parents=True, exist_ok=True)
        children = _children_of()
        pending, targets = [self.root_pid], []
        while pending:
            pid = pending.pop()
            kids = children.get(pid, [])
            pending.extend(kids)
            role = _role(pid)
            if role in ("web", "celery", "celery io") and not kids:  # the workers that serve, not their masters
                targets.append((role, pid))
        for role, pid in targets:
            output = self.directory / f"{self.label}-{role}-{pid}.txt"
            self.recorders.append(
                subprocess.Popen(  # noqa: S603 (a tool of the venv)
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--gil",
                        "--output",
                        str(output),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> None:
        for recorder in self.recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in self.recorders:
            with contextlib.suppress(subprocess.TimeoutExpired):
                recorder.wait(timeout=30)


# --- the buyers --------------------------------------------------------------------------------
@dataclass
class Tally:
    statuses: dict[int, int] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)
    completed: int = 0
    failures: list[str] = field(default_factory=list)
    requests: int = 0
    wrong_amount_refused: int = 0
    wrong_amount_accepted: int = 0
    retried: int = 0

    def count(self, status: int) -> None:
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def server_errors(self) -> int:
        return sum(times for status, times in self.statuses.items() if status >= 500)


class UnexpectedAnswer(Exception):
    pass


def buyer_address(run: int, number: int) -> str:
    """A loopback address of its own for each buyer (Linux routes all of 127/8 to lo)."""
    return f"127.{20 + run}.{number // 250}.{number % 250 + 1}"


async def _call(session, tally: Tally, method: str, url: str, *, expect: tuple[int, ...], **kwargs):
    """One request; a kept-alive connection the server closed just then is retried once, as a
    browser does (every step of the flow is safe to repeat: the checkout carries its one-time
    token, the cashier and the notifications change nothing the second time)."""
    import aiohttp

    for attempt in (1, 2):
        try:
            async with session.request(method, url, allow_redirects=False, **kwargs) as response:
                body = await response.text()
                break
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if attempt == 2:
                raise
            tally.retried += 1
    tally.count(response.status)
    if response.status not in expect:
        raise UnexpectedAnswer(f"{method} {url.split('?')[0]}: {response.status} {body[:120]!r}")
    return response, body


def _found(pattern: re.Pattern, text: str, what: str) -> str:
    match = pattern.search(text)
    if match is None:
        raise UnexpectedAnswer(f"no {what} on the page")
    return match.group(1) if pattern.groups else match.group(0)


@dataclass
class Storm:
    base_url: str
    product_id: int
    run: int
    lean: bool
    tally: Tally
    gateway_sessions: list
    sign: object
    app_id: str
    rng: random.Random

    def _headers(self, number: int) -> dict:
        return {
            "User-Agent": USER_AGENT.format(number=number),
            "Accept-Language": "zh-CN,zh;q=0.9",
            "Origin": self.base_url,
        }

    async def notify(self, order_no: str, trade_no: str, amount: str, *, event: str) -> tuple[int, str]:
        """A signed notification as the gateway posts it, from one of its few addresses."""
        payload = {
            "app_id": self.app_id,
            "event_id": event,
            "out_trade_no": order_no,
            "trade_no": trade_no,
            "amount": amount,
            "currency": "CNY",
            "status": "succeeded",
            "paid_at": None,
        }
        body, headers = self.sign(payload)
        session = self.rng.choice(self.gateway_sessions)
        url = f"{self.base_url}/pay/notify/sandbox/"
        response, answer = await _call(session, self.tally, "POST", url, data=body, headers=headers, expect=(200, 400))
        return response.status, answer

    async def order(self, number: int) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(
            local_addr=(buyer_address(self.run, number), 0), limit=0, keepalive_timeout=KEEPALIVE_SECONDS
        )
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address host
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=jar, headers=self._headers(number), timeout=timeout
        ) as session:
            await self._flow(session, number)

    async def _flow(self, session, number: int) -> None:
        base, tally = self.base_url, self.tally
        _response, page = await _call(session, tally, "GET", f"{base}/products/{self.product_id}/", expect=(200,))
        form = {
            "csrfmiddlewaretoken": _found(CSRF_RE, page, "CSRF token"),
            "checkout_token": _found(CHECKOUT_TOKEN_RE, page, "checkout token"),
            "quantity": "1",
            "contact": f"storm{self.run}-{number}@buyers.test",
            "query_password": "storm-pass",
        }
        started = time.perf_counter()
        checkout_url = f"{base}/buy/{self.product_id}/"
        response, _body = await _call(session, tally, "POST", checkout_url, data=form, expect=(302,))
        cashier_url = base + response.headers["Location"]
        trade_no = cashier_url.rstrip("/").rsplit("/", 1)[1]
        _response, cashier = await _call(session, tally, "GET", cashier_url, expect=(200,))
        order_no = _found(ORDER_NO_RE, cashier, "order number")
        if self.lean:
            status, answer = await self.notify(order_no, trade_no, f"{PRICE:.2f}", event=f"LEAN-{order_no}")
            if (status, answer.strip()) != (200, "success"):
                raise UnexpectedAnswer(f"notification: {status} {answer[:80]!r}")
            order_url = f"{base}/orders/{order_no}/"
        else:
            if self.rng.random() < WRONG_AMOUNT_SHARE:
                status, answer = await self.notify(order_no, trade_no, "0.01", event=f"WRONG-{order_no}")
                if answer.strip() == "success":
                    tally.wrong_amount_accepted += 1
                else:
                    tally.wrong_amount_refused += 1
            token = _found(CSRF_RE, cashier, "CSRF token")
            response, _body = await _call(
                session, tally, "POST", cashier_url, data={"csrfmiddlewaretoken": token, "action": "pay"}, expect=(302,)
            )
            # The return address is built from SITE_URL (the stack's own port): the buyer
            # follows its path on the address they came through (the proxy, or the stack).
            location = urlsplit(response.headers["Location"])
            order_url = base + location.path + (f"?{location.query}" if location.query else "")
        _response, page = await _call(session, tally, "GET", order_url, expect=(200,))
        if 'data-testid="secret"' not in page:
            await self._poll(session, order_url, page)
        tally.waits.append(time.perf_counter() - started)
        tally.completed += 1

    async def _poll(self, session, order_url: str, page: str) -> None:
        """As the order page's script: status.json on the page's schedule; a paid order's new
        status is shown in place, new deliveries (or an ending) load the page again; either
        starts the schedule again; done when the keys are on it."""
        deadline = time.monotonic() + ORDER_TIMEOUT_SECONDS
        found = STATUS_URL_RE.search(page)
        path = html.unescape(found.group(1)) if found else urlsplit(order_url).path + "status.json"
        status_url = self.base_url + path
        shown = _page_state(page)
        delays = poll_delays()
        await asyncio.sleep(next(delays))
        while time.monotonic() < deadline:
            _response, body = await _call(session, self.tally, "GET", status_url, expect=(200,))
            summary = json.loads(body)
            if summary.get("is_under_review"):
                raise UnexpectedAnswer("held for risk review")
            status, delivered = summary["status"], str(summary["delivered"])
            if delivered != shown[1] or (status != shown[0] and not _patched_in_place(summary)):
                _response, page = await _call(session, self.tally, "GET", order_url, expect=(200,))
                if 'data-testid="secret"' in page:
                    return
                shown, delays = _page_state(page), poll_delays()
            elif summary["is_final"]:
                raise UnexpectedAnswer(f"order ended {summary['status']} without keys")
            elif status != shown[0]:  # the page changes its status line itself and asks again soon
                shown, delays = (status, delivered), poll_delays()
            await asyncio.sleep(next(delays))
        raise UnexpectedAnswer("keys not shown in time")


PAGE_STATE_RE = re.compile(r'data-status="([^"]*)"[^>]*data-delivered="([^"]*)"')


def _patched_in_place(summary: dict) -> bool:
    """The order page's script shows these without loading the page again (no goods yet)."""
    return not summary["is_final"] and summary["status"] in ("paid", "fulfilling", "backordered")


def _page_state(page: str) -> tuple[str, str]:
    """The status and number of deliveries the order page shows (its script compares them)."""
    found = PAGE_STATE_RE.search(page)
    return (found.group(1), found.group(2)) if found else ("", "")


def poll_delays():
    """The order page script's waits between polls, in seconds (static/kamen/js/order-page.js):
    FIRST_POLL_SECONDS, then POLL_SECONDS while the page is younger than FAST_POLL_FOR_SECONDS,
    then 1 s longer each time up to SLOWEST_POLL_SECONDS."""
    opened = time.monotonic()
    yield FIRST_POLL_SECONDS
    slow = 0
    while True:
        if time.monotonic() - opened < FAST_POLL_FOR_SECONDS:
            yield POLL_SECONDS
        else:
            slow += 1
            yield min(POLL_SECONDS + slow, SLOWEST_POLL_SECONDS)


async def _drive(storm: Storm, *, orders: int, buyers: int, first: int = 0) -> float:
    """``buyers`` at once until ``orders`` are placed; returns the seconds it took."""
    import aiohttp

    numbers = iter(range(first, first + orders))

    async def buyer() -> None:
        for number in numbers:
            try:
                await storm.order(number)
            except (TimeoutError, UnexpectedAnswer, aiohttp.ClientError, KeyError, ValueError) as error:
                storm.tally.failures.append(f"buyer {number}: {error!r}"[:300])

    started = time.perf_counter()
    await asyncio.gather(*(buyer() for _slot in range(buyers)))
    return time.perf_counter() - started


async def _with_gateway_sessions(work):
    import aiohttp

    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(address, 0), limit=0, keepalive_timeout=KEEPALIVE_SECONDS)
        )
        for address in GATEWAY_ADDRESSES
    ]
    try:
        return await work(sessions)
    finally:
        for session in sessions:
            await session.close()


# --- one run -----------------------------------------------------------------------------------
def _product(run: int, keys: int, *, lean: bool):
    from bench.pipeline import _stock
    from catalog.models import Category, Product, ProductType

    category, _ = Category.objects.get_or_create(slug="bench-http", defaults={"name": "bench http", "is_active": True})
    product = Product.objects.create(
        category=category,
        name=f"{'lean' if lean else 'storm'} {run}",
        product_type=ProductType.CARD_KEY,
        retail_price=PRICE,
        cost_price=Decimal("6.00"),
        is_on_shelf=True,
        max_quantity_per_order=1,
    )
    _stock(product, keys, f"http-{'lean' if lean else 'storm'}-{run}")
    return product


def _queues_drained(redis_url: str, timeout: float) -> None:
    """Wait (up to ``timeout``) until the Celery queues are empty and nothing is in flight."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            waiting = sum(client.llen(name) for name in ("celery", "fulfilment", "io", "default"))
            if waiting == 0 and not any(client.hlen(name) for name in UNACKED_KEYS):
                return
            time.sleep(0.2)
    finally:
        client.close()


def _check_invariants(product, tally: Tally) -> dict:
    """The invariants, and how many of the sandbox's notifications reached Kamen more than 5 s
    after they were queued (a backlog, or answers other than ``success``: retried with backoff)."""
    from django.db.models import Count, F

    from catalog.models import CardKey, CardKeyStatus
    from orders.models import DeliveryKind, Order, OrderDelivery, OrderStatus, OrderStatusChange, SandboxNotification

    orders = Order.objects.filter(product=product)
    by_status = dict(orders.order_by().values_list("status").annotate(total=Count("id")))
    # Checkout sent these to risk review: paid, and held until staff decide (not a failure of
    # the pipeline, but a buyer who waits; the figure says how many).
    held = orders.filter(attribution__risk="review")
    paid_not_completed = (
        orders.filter(paid_at__isnull=False).exclude(status=OrderStatus.COMPLETED).exclude(pk__in=held).count()
    )
    deliveries = OrderDelivery.objects.filter(product=product, kind=DeliveryKind.CARD_KEY, is_voided=False)
    twice = deliveries.values("card_key_id").annotate(times=Count("id")).filter(times__gt=1).count()
    sold = CardKey.objects.filter(product=product, status=CardKeyStatus.SOLD).count()
    wrong_paid = orders.filter(paid_at__isnull=False).exclude(paid_amount=F("total_amount")).count()
    paid_twice = (
        OrderStatusChange.objects.filter(order__product=product, new_status=OrderStatus.PAID)
        .values("order_id")
        .annotate(times=Count("id"))
        .filter(times__gt=1)
        .count()
    )
    notifications = SandboxNotification.objects.filter(payment__out_trade_no__in=orders.values("order_no"))
    late = notifications.filter(delivered_at__gt=F("created_at") + timedelta(seconds=5)).count()
    undelivered = notifications.filter(delivered_at__isnull=True).count()
    problems = []
    if paid_not_completed:
        problems.append(f"{paid_not_completed} paid orders not completed")
    if twice:
        problems.append(f"{twice} card keys delivered twice")
    if sold != deliveries.count():
        problems.append(f"{sold} keys sold for {deliveries.count()} deliveries")
    if wrong_paid or tally.wrong_amount_accepted:
        problems.append(f"wrong amount accepted ({wrong_paid} orders, {tally.wrong_amount_accepted} answers)")
    if paid_twice:
        problems.append(f"{paid_twice} orders marked paid twice")
    if by_status.get(OrderStatus.COMPLETED, 0) < tally.completed:
        problems.append(f"{tally.completed} buyers saw keys, {by_status.get(OrderStatus.COMPLETED, 0)} completed")
    return {
        "by_status": by_status,
        "problems": problems,
        "late": late,
        "undelivered": undelivered,
        "held_for_review": held.count(),
    }


def _one_flow(stack: Stack, *, run: int, lean: bool, orders: int, buyers: int, warm_up: int, proxy=None) -> dict:
    """One measured flow; through ``proxy`` (a bench.reverse_proxy.ReverseProxy) if given."""
    from django.conf import settings
    from django.db import connection

    from orders.gateways.sandbox import signed_body

    product = _product(run, orders + warm_up, lean=lean)
    tally = Tally()
    storm = Storm(
        base_url=proxy.base_url if proxy is not None else stack.base_url,
        product_id=product.pk,
        run=run * 2 + lean,
        lean=lean,
        tally=tally,
        gateway_sessions=[],
        sign=signed_body,
        app_id=settings.SANDBOX_GATEWAY_APP_ID,
        rng=random.Random(run),
    )
    redis_url = _stack_redis_url()

    def drive(orders_now: int, buyers_now: int, first: int = 0) -> float:
        async def work(sessions):
            storm.gateway_sessions = sessions
            return await _drive(storm, orders=orders_now, buyers=buyers_now, first=first)

        return asyncio.run(_with_gateway_sessions(work))

    # Warm-up: every web thread and worker has served an order before the measure starts.
    drive(warm_up, min(buyers, 8), first=orders)
    _queues_drained(redis_url, timeout=30)
    if tally.failures:
        print(f"  warm-up failures: {tally.failures[:3]}")
    tally.waits.clear()
    tally.completed, tally.statuses, tally.requests = 0, {}, 0
    meter = CpuMeter(root_pid=stack.process.pid, database=connection.settings_dict["NAME"])
    profiler = None
    if os.environ.get("BENCH_HTTP_PROFILE"):
        label = f"{'lean' if lean else 'storm'}{run}"
        profiler = Profiler(root_pid=stack.process.pid, directory=os.environ["BENCH_HTTP_PROFILE"], label=label)
        profiler.start()
    meter.start()
    try:
        client_start = resource.getrusage(resource.RUSAGE_SELF)
        proxy_start = proxy.cpu_seconds() if proxy is not None else 0.0
        elapsed = drive(orders, buyers)
        proxy_seconds = proxy.cpu_seconds() - proxy_start if proxy is not None else 0.0
        client_end = resource.getrusage(resource.RUSAGE_SELF)
        _queues_drained(redis_url, timeout=20)
    finally:
        used = meter.stop()
        if profiler is not None:
            profiler.stop()
    client_seconds = (client_end.ru_utime + client_end.ru_stime) - (client_start.ru_utime + client_start.ru_stime)
    checked = _check_invariants(product, tally)
    completed = tally.completed
    server = sum(used.values())
    per_order = server * 1000 / max(completed, 1)
    load = os.getloadavg()
    name = ("lean" if lean else "storm") + (" via nginx" if proxy is not None else "")
    parts = ", ".join(f"{role} {seconds * 1000 / max(completed, 1):.1f}" for role, seconds in sorted(used.items()))
    if proxy is not None:
        parts += f"; nginx {proxy_seconds * 1000 / max(completed, 1):.1f} besides"
    print(
        f"  http {name} run {run}: {completed}/{orders} orders in {elapsed:.1f} s = {completed / elapsed:.1f}/s "
        f"({buyers} buyers, {tally.requests / max(completed, 1):.1f} requests per order); server CPU "
        f"{per_order:.1f} ms/order ({parts}); client CPU {client_seconds * 1000 / max(completed, 1):.1f} ms/order; "
        f"wait p50 {_percentile(tally.waits, 0.5):.2f} s p95 {_percentile(tally.waits, 0.95):.2f} s; "
        f"answers {dict(sorted(tally.statuses.items()))}; load {load[0]:.2f}"
    )
    if not lean:
        refused = tally.wrong_amount_refused
        print(
            f"    wrong-amount notifications refused: {refused}; orders by status {checked['by_status']}; "
            f"sandbox notifications delivered > 5 s late: {checked['late']}, undelivered: {checked['undelivered']}; "
            f"held for risk review: {checked['held_for_review']}"
        )
    if tally.failures:
        print(f"    {len(tally.failures)} buyers failed, e.g. {tally.failures[:3]}")
    assert not checked["problems"], checked["problems"]
    return {
        "rate": completed / elapsed,
        "cpu": per_order,
        "client_cpu": client_seconds * 1000 / max(completed, 1),
        "waits": list(tally.waits),
        "server_errors": tally.server_errors,
        "too_many": tally.statuses.get(429, 0),
        "proxy_cpu": proxy_seconds * 1000 / max(completed, 1),
        "held_for_review": checked["held_for_review"],
        "failures": len(tally.failures),
        "by_role": {role: seconds * 1000 / max(completed, 1) for role, seconds in used.items()},
    }


def run(repeats: int) -> dict[str, float]:
    from django.conf import settings
    from django.db import connection

    if not settings.REDIS_URL:
        print("http storm omitted: it needs REDIS_URL (the real mode's Celery broker)")
        return {}
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("http storm omitted: aiohttp is not installed (pip install -r requirements-dev.txt)")
        return {}
    from bench.reverse_proxy import INSTALL_HINT, nginx_binary, start_nginx

    repeats = int(REPEATS or repeats)
    proxy_repeats = min(PROXY_REPEATS, repeats) if PROXY and ORDERS else 0
    if proxy_repeats and nginx_binary() is None:
        print(f"http storm through a proxy omitted: {INSTALL_HINT}")
        proxy_repeats = 0
    redis_url = _stack_redis_url()
    _empty_celery_queues(redis_url)
    connection.close()  # the stack migrates the database: no open transaction of ours in its way
    stack = start_stack(
        database_settings=connection.settings_dict,
        redis_url=redis_url,
        sandbox_secret=settings.SANDBOX_GATEWAY_SECRET,
        # nginx connects from 127.0.0.1; no direct buyer or gateway address is that one.
        trusted_proxies="127.0.0.1" if proxy_repeats else "",
    )
    storms, leans, proxied = [], [], []
    proxy = None
    try:
        if proxy_repeats:
            proxy = start_nginx(upstream=stack.base_url)
        for number in range(repeats):

            def direct(number=number) -> None:
                if ORDERS:
                    storms.append(_one_flow(stack, run=number, lean=False, orders=ORDERS, buyers=BUYERS, warm_up=16))

            def through_proxy(number=number) -> None:
                if number < proxy_repeats:
                    run = PROXY_RUN_OFFSET + number
                    proxied.append(
                        _one_flow(stack, run=run, lean=False, orders=ORDERS, buyers=BUYERS, warm_up=16, proxy=proxy)
                    )

            # Next to the direct run it is compared with, on the same stack under the same load;
            # which goes first alternates, so a load rising or falling during the bench favours
            # neither.
            for flow in (direct, through_proxy) if number % 2 == 0 else (through_proxy, direct):
                flow()
            if LEAN_ORDERS:
                leans.append(_one_flow(stack, run=number, lean=True, orders=LEAN_ORDERS, buyers=LEAN_BUYERS, warm_up=8))
    except BaseException:
        print(_log_tail(stack))
        if proxy is not None:
            print("--- nginx's error log, last lines ---\n" + proxy.error_log())
        raise
    finally:
        if proxy is not None:
            proxy.stop()
        stack.stop()
        _empty_celery_queues(redis_url)
    figures: dict[str, float] = {}
    if storms:
        waits = [wait for result in storms for wait in result["waits"]]
        print(
            f"http storm runs ({BUYERS} buyers, {ORDERS} orders): orders/s {[round(r['rate'], 1) for r in storms]}, "
            f"server CPU ms/order {[round(r['cpu'], 1) for r in storms]}"
        )
        figures |= {
            "http_orders_per_s": round(statistics.median(r["rate"] for r in storms), 1),
            "http_server_cpu_ms_per_order": round(statistics.median(r["cpu"] for r in storms), 1),
            "http_client_cpu_ms_per_order": round(statistics.median(r["client_cpu"] for r in storms), 1),
            "buyer_wait_p50_s": round(_percentile(waits, 0.50), 2),
            "buyer_wait_p95_s": round(_percentile(waits, 0.95), 2),
            "http_5xx": float(sum(r["server_errors"] for r in storms)),
            "http_failed_orders": float(sum(r["failures"] for r in storms)),
            "http_429": float(sum(r["too_many"] for r in storms)),
            "http_held_for_review": float(statistics.median(r["held_for_review"] for r in storms)),
        }
    if leans:
        waits = [wait for result in leans for wait in result["waits"]]
        print(
            f"http lean runs ({LEAN_BUYERS} buyers, {LEAN_ORDERS} orders): "
            f"orders/s {[round(r['rate'], 1) for r in leans]}, "
            f"server CPU ms/order {[round(r['cpu'], 1) for r in leans]}"
        )
        figures |= {
            "http_lean_orders_per_s": round(statistics.median(r["rate"] for r in leans), 1),
            "http_lean_cpu_ms_per_order": round(statistics.median(r["cpu"] for r in leans), 1),
            "http_lean_wait_p95_s": round(_percentile(waits, 0.95), 2),
        }
        figures["http_5xx"] = figures.get("http_5xx", 0.0) + sum(r["server_errors"] for r in leans)
    if proxied:
        direct = statistics.median(r["rate"] for r in storms)
        through = statistics.median(r["rate"] for r in proxied)
        print(
            f"http storm runs through nginx ({BUYERS} buyers, {ORDERS} orders): "
            f"orders/s {[round(r['rate'], 1) for r in proxied]} against {[round(r['rate'], 1) for r in storms]} "
            f"direct; server CPU ms/order {[round(r['cpu'], 1) for r in proxied]}, "
            f"nginx's {[round(r['proxy_cpu'], 1) for r in proxied]}; "
            f"429 answers {[r['too_many'] for r in proxied]}; held for review "
            f"{[r['held_for_review'] for r in proxied]} against {[r['held_for_review'] for r in storms]} direct"
        )
        figures |= {
            "http_proxy_orders_per_s": round(through, 1),
            "http_proxy_orders_ratio": round(through / direct, 3) if direct else 0.0,
            "http_proxy_429": float(sum(r["too_many"] for r in proxied)),
            "http_proxy_held_for_review": float(statistics.median(r["held_for_review"] for r in proxied)),
            # Issue 25 §4: no more orders held for review through the proxy than without it.
            "http_proxy_held_over_direct": float(
                statistics.median(r["held_for_review"] for r in proxied)
                - statistics.median(r["held_for_review"] for r in storms)
            ),
            "http_proxy_5xx": float(sum(r["server_errors"] for r in proxied)),
            "http_proxy_failed_orders": float(sum(r["failures"] for r in proxied)),
            "http_proxy_server_cpu_ms_per_order": round(statistics.median(r["cpu"] for r in proxied), 1),
            "http_proxy_nginx_cpu_ms_per_order": round(statistics.median(r["proxy_cpu"] for r in proxied), 2),
        }
    return figures
