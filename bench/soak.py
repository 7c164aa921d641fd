"""``make soak``: the real-mode stack as ``make run`` starts it, buyers over HTTP for N minutes,
restocking, and a fault every few minutes (issue 26 §3).

    python -m bench.soak --minutes 20 --buyers 6 --fault-every 150

Starts a private redis-server and, when ``initdb`` is installed, a private PostgreSQL (the only
one it may restart); otherwise a scratch database ``kamen_soak`` on ``DATABASE_URL`` and no
PostgreSQL fault. Then ``scripts/run.sh`` (supervisor, two Celery workers, beat, RQ, gunicorn)
on a free port. Each order is a new buyer: its own cookies and its own loopback address
(127.x.y.z), through the product page, checkout, the sandbox cashier's 支付成功 and the order's
``status.json`` until the keys show. Faults rotate: kill -9 of a Celery pool process, kill -9 of
a gunicorn worker, Redis stopped 15 s, PostgreSQL restarted. Prints a report and merges
``soak_5xx``, ``soak_max_resume_s``, ``soak_paid_undelivered``, ``soak_celery_rss_growth_mb``
into bench-results.json; exits 1 when an invariant breaks. Loopback only.
"""

import argparse
import http.client
import http.cookiejar
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("VENV") or Path(sys.executable).parent.parent)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class Servers:
    """Private Redis (and PostgreSQL when initdb exists) in a temporary directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.redis_port = _free_port()
        self.redis = None
        self.pg_bin = None
        self.run_as: list[str] = []
        self.database_url = ""

    def start_redis(self) -> None:
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    def stop_redis(self) -> None:
        self.redis.kill()
        self.redis.wait()

    def start_postgres(self) -> bool:
        initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
        if not initdb:
            return False
        self.pg_bin = Path(initdb).resolve().parent  # /usr/local/bin/initdb may be a link
        data = self.directory / "pg"
        if os.getuid() == 0:
            shutil.chown(self.directory, "nobody")
            self.directory.chmod(0o777)
            self.run_as = ["runuser", "-u", "nobody", "--"]
        port = _free_port()
        subprocess.run([*self.run_as, self.pg_bin / "initdb", "-D", data, "-U", "postgres", "--auth=trust"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        self.pg_options = (
            f"-p {port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        )
        self._pg_ctl("start")
        subprocess.run(
            [self.pg_bin / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "kamen"], check=True
        )
        self.database_url = f"postgres://postgres@127.0.0.1:{port}/kamen"
        return True

    def _pg_ctl(self, action: str, *extra: str) -> None:
        command = [*self.run_as, self.pg_bin / "pg_ctl", "-D", self.directory / "pg", "-o", self.pg_options,
                   "-l", self.directory / "pg.log", "-w", *extra, action]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

    def restart_postgres(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        if self.redis and self.redis.poll() is None:
            self.redis.kill()
        if self.pg_bin:
            try:
                self._pg_ctl("stop", "-m", "immediate")
            except subprocess.CalledProcessError:
                pass


class Buyer:
    """One order, one new buyer: fresh cookies, its own loopback source address."""

    def __init__(self, port: int, number: int):
        self.port = port
        self.source = f"127.{1 + number // 65025 % 250}.{number // 255 % 255}.{1 + number % 254}"
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30, source_address=(self.source, 0))
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers |= {
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://127.0.0.1:{self.port}/",
            }
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        location = urllib.parse.urlparse(response.headers.get("Location") or "").path
        return response.status, text, location


def _form_value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    return found.group(1) if found else ""


class Soak:
    def __init__(self, options):
        self.options = options
        self.directory = Path(tempfile.mkdtemp(prefix="kamen-soak-"))
        self.servers = Servers(self.directory)
        self.port = _free_port()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.waits: list[tuple[float, float]] = []  # (minute, seconds)
        self.statuses: Counter = Counter()
        self.five_xx: Counter = Counter()  # by the fault window they fell in
        self.current_fault = "none"
        self.faults: list[dict] = []
        self.rss: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.buyer_number = 0
        self.started = 0.0

    # --- the stack ---------------------------------------------------------------------------
    def start(self) -> None:
        self.servers.start_redis()
        if not self.servers.start_postgres():
            base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kamen")
            self.servers.database_url = base.rsplit("/", 1)[0] + "/kamen_soak"
            subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", "kamen_soak"], check=False)
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", "kamen_soak"], check=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KAMEN_") and k != "TEST_DATABASE_NAME"},
            "DATABASE_URL": self.servers.database_url,
            "REDIS_URL": f"redis://127.0.0.1:{self.servers.redis_port}/0",
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "KAMEN_VAR_DIR": str(self.directory / "var"),
            "DJANGO_SETTINGS_MODULE": "kamen.settings.base",
            "VENV": str(VENV),
        }
        self.log = (self.directory / "run.log").open("w")
        self.stack = subprocess.Popen([REPO / "scripts" / "run.sh"], env=self.env, cwd=REPO, stdout=self.log,
                                      stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if Buyer(self.port, 0).request("GET", "/healthz")[0] == 200 and self._pids("worker-fulfilment"):
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            raise SystemExit(f"the stack did not start; see {self.directory / 'run.log'}")
        keys = json.loads((self.directory / "var" / "keys.json").read_text())
        os.environ |= {
            "DATABASE_URL": self.servers.database_url,
            "REDIS_URL": self.env["REDIS_URL"],
            "KAMEN_ENCRYPTION_KEYS": keys["encryption_keys"],
            "KAMEN_BLIND_INDEX_KEY": keys["blind_index_key"],
            "KAMEN_VAR_DIR": self.env["KAMEN_VAR_DIR"],
            "DJANGO_SETTINGS_MODULE": "kamen.settings.base",
        }
        import django

        django.setup()
        from catalog.models import Product, ProductType
        from riskcontrol.models import RiskRule

        # Every order is a new buyer on a new address: the rules about repeat buyers would only
        # hold orders for review, which is not what this measures.
        RiskRule.objects.update(is_enabled=False)
        from bench.support import card_key_product, import_keys

        self.product = card_key_product("soak", max_quantity_per_order=1, is_on_shelf=True)
        assert self.product.product_type == ProductType.CARD_KEY and Product.objects.filter(pk=self.product.pk).exists()
        self.keys_added = import_keys(self.product, 500, f"SOAK{int(time.time())}")

    def _pids(self, program: str) -> list[int]:
        return [
            int(pid)
            for pid in re.findall(rf"{program} started \(pid (\d+)\)", (self.directory / "run.log").read_text())
        ]

    def _live(self, program: str) -> int | None:
        pids = self._pids(program)
        if pids and Path(f"/proc/{pids[-1]}").exists():
            return pids[-1]
        return None

    # --- buyers -------------------------------------------------------------------------------
    def buy_once(self) -> None:
        with self.lock:
            self.buyer_number += 1
            buyer = Buyer(self.port, self.buyer_number)
        product = f"/products/{self.product.pk}/"
        status, page, _ = buyer.request("GET", product)
        self._count(status)
        if status != 200:
            return
        began = time.monotonic()
        form = {
            "csrfmiddlewaretoken": _form_value(page, "csrfmiddlewaretoken"),
            "checkout_token": _form_value(page, "checkout_token"),
            "quantity": "1",
            "contact": f"soak{self.buyer_number}@example.com",
            "query_password": "soak-pass-1234",
        }
        status, page, cashier = buyer.request("POST", f"/buy/{self.product.pk}/", form)
        self._count(status)
        if status != 302 or "/pay/sandbox/" not in cashier:
            return
        status, page, _ = buyer.request("GET", cashier)
        self._count(status)
        form = {"csrfmiddlewaretoken": _form_value(page, "csrfmiddlewaretoken"), "action": "pay"}
        status, _, order_page = buyer.request("POST", cashier, form)
        self._count(status)
        match = re.search(r"/orders/([^/]+)/", order_page)
        if not match:
            return
        while not self.stop.is_set() and time.monotonic() - began < 300:
            try:
                status, text, _ = buyer.request("GET", f"/orders/{match.group(1)}/status.json")
            except OSError:
                status, text = 0, ""
            self._count(status)
            if status == 200 and json.loads(text).get("delivered"):
                with self.lock:
                    self.waits.append(((time.monotonic() - self.started) / 60, time.monotonic() - began))
                return
            time.sleep(0.5)

    def _count(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status >= 500:
                self.five_xx[self.current_fault] += 1

    def buyer_loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.buy_once()
            except OSError:
                self._count(0)
                time.sleep(0.5)

    # --- restocking, faults, sampling ---------------------------------------------------------
    def restock(self) -> None:
        from django.db import close_old_connections

        from bench.support import import_keys
        from catalog.models import CardKey, CardKeyStatus

        while not self.stop.wait(10):
            close_old_connections()
            try:
                if CardKey.objects.filter(product=self.product, status=CardKeyStatus.AVAILABLE).count() < 200:
                    self.keys_added += import_keys(self.product, 500, f"SOAK{int(time.time() * 1000)}")
            except Exception as error:  # PostgreSQL restarting: next time
                print(f"restock skipped: {error.__class__.__name__}", flush=True)

    def inject(self, kind: str) -> dict:
        began = time.time()
        self.current_fault = kind
        detail = ""
        if kind == "celery-pool-kill":
            main = self._live("worker-fulfilment")
            pool = _children(main) if main else []
            if pool:
                os.kill(random.choice(pool), signal.SIGKILL)
                detail = "pool process"
        elif kind == "gunicorn-worker-kill":
            master = self._live("web")
            workers = _children(master) if master else []
            if workers:
                os.kill(random.choice(workers), signal.SIGKILL)
        elif kind == "redis-stop-15s":
            self.servers.stop_redis()
            time.sleep(15)
            self.servers.start_redis()
        elif kind == "postgres-restart":
            self.servers.restart_postgres()
        ended = time.time()
        self.current_fault = f"after {kind}"
        return {"kind": kind, "start": began, "end": ended, "detail": detail}

    def sample(self) -> None:
        elapsed = (time.monotonic() - self.started) / 60
        for program in ("worker-fulfilment", "worker-io", "beat", "rq", "web"):
            main = self._live(program)
            if main:
                self.rss[f"{program} main"].append((elapsed, _rss_mb(main)))
                children = _children(main)
                if children:
                    self.rss[f"{program} children"].append((elapsed, max(_rss_mb(child) for child in children)))
        if self.servers.redis and self.servers.redis.poll() is None:
            self.rss["redis"].append((elapsed, _rss_mb(self.servers.redis.pid)))

    def run(self) -> int:
        self.stack = None
        try:
            self.start()
        except BaseException:
            self._shut_down()
            raise
        self.started = time.monotonic()
        threads = [threading.Thread(target=self.buyer_loop, daemon=True) for _ in range(self.options.buyers)]
        threads.append(threading.Thread(target=self.restock, daemon=True))
        for thread in threads:
            thread.start()
        kinds = ["celery-pool-kill", "gunicorn-worker-kill", "redis-stop-15s"]
        if self.servers.pg_bin:
            kinds.append("postgres-restart")
        end = self.started + self.options.minutes * 60
        next_fault = self.started + self.options.fault_every
        next_sample = self.started
        try:
            while time.monotonic() < end:
                if time.monotonic() >= next_sample:
                    self.sample()
                    next_sample += 15
                if time.monotonic() >= next_fault and time.monotonic() < end - 45:
                    self.faults.append(self.inject(kinds[len(self.faults) % len(kinds)]))
                    print(
                        f"{(time.monotonic() - self.started) / 60:5.1f} min: fault {self.faults[-1]['kind']}",
                        flush=True,
                    )
                    next_fault += self.options.fault_every
                time.sleep(1)
            self.stop.set()
            time.sleep(35)  # paid orders still in flight get the recovery's 30 s
            return self.report()
        finally:
            self._shut_down()

    def _shut_down(self) -> None:
        self.stop.set()
        if self.stack is not None and self.stack.poll() is None:
            os.killpg(self.stack.pid, signal.SIGINT)
            try:
                self.stack.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.stack.pid, signal.SIGKILL)
        self.servers.stop()

    # --- the report ---------------------------------------------------------------------------
    def report(self) -> int:
        from django.db import close_old_connections, connection
        from django.db.models import Count

        from orders.models import Order, OrderDelivery, OrderStatus

        close_old_connections()
        orders = Order.objects.filter(product=self.product)
        paid_undelivered = orders.filter(status__in=[OrderStatus.PAID, OrderStatus.FULFILLING]).count()
        sold_twice = (
            OrderDelivery.objects.filter(card_key__isnull=False)
            .values("card_key").annotate(n=Count("id")).filter(n__gt=1).count()
        )  # fmt: skip
        completed = list(orders.filter(status=OrderStatus.COMPLETED).values_list("completed_at", flat=True))
        completions = sorted(moment.timestamp() for moment in completed)
        resumes = []
        for fault in self.faults:
            after = [moment for moment in completions if moment > fault["end"]]
            fault["resume_s"] = round(after[0] - fault["end"], 1) if after else None
            resumes.append(fault["resume_s"] if fault["resume_s"] is not None else float("inf"))
        print(f"\nsoak: {self.options.minutes} min, {self.options.buyers} buyers, log {self.directory / 'run.log'}")
        print(f"orders {orders.count()}, completed {len(completed)}, keys stocked {self.keys_added}")
        print(f"HTTP statuses: {dict(sorted(self.statuses.items()))}; 5xx by fault window: {dict(self.five_xx)}")
        print("minute  orders  wait p50 s  wait p95 s")
        by_minute = defaultdict(list)
        for minute, wait in self.waits:
            by_minute[int(minute)].append(wait)
        for minute, waits in sorted(by_minute.items()):
            waits.sort()
            p95 = waits[min(len(waits) - 1, int(len(waits) * 0.95))]
            print(f"{minute:6d}  {len(waits):6d}  {statistics.median(waits):10.2f}  {p95:10.2f}")
        print("faults:")
        for fault in self.faults:
            print(f"  {fault['kind']:22s} completions resumed {fault['resume_s']} s after it ended")
        print("RSS MB (first / last / max):")
        for kind, samples in sorted(self.rss.items()):
            values = [value for _, value in samples]
            print(f"  {kind:28s} {values[0]:7.1f} {values[-1]:7.1f} {max(values):7.1f}")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            print(f"PostgreSQL connections at the end: {cursor.fetchone()[0]}")
        celery = [
            value for minute, value in self.rss.get("worker-fulfilment main", []) if minute >= self.options.minutes / 4
        ]
        figures = {
            "soak_5xx": sum(self.five_xx.values()),
            "soak_max_resume_s": max(resumes) if resumes else 0.0,
            "soak_paid_undelivered": paid_undelivered,
            "soak_celery_rss_growth_mb": round(celery[-1] - celery[0], 1) if len(celery) > 1 else 0.0,
            "soak_keys_sold_twice": sold_twice,
            "soak_orders_completed": len(completed),
        }
        print(json.dumps(figures, indent=2))
        results = REPO / "bench-results.json"
        merged = json.loads(results.read_text()) if results.exists() else {}
        results.write_text(json.dumps(merged | figures, indent=2) + "\n")
        broken = paid_undelivered or sold_twice
        if broken:
            print("INVARIANT BROKEN", file=sys.stderr)
        return 1 if broken else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--buyers", type=int, default=6)
    parser.add_argument("--fault-every", type=float, default=150)
    return Soak(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
