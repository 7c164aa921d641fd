"""Two Kamen sites in one test run (issue 17 §4): the test's own site (its test database, its
live server) docks an upstream Kamen run as its own gunicorn process on its own database.

The upstream's database is a copy of the test database taken before the test writes anything
(``CREATE DATABASE … TEMPLATE``: migrated, roles and risk rules in, no data), so it costs
seconds, not a migration run. The upstream runs in the embedded background mode (no Redis:
its fulfilment runs in-process right after the commit, as ``make run`` does), and can be
stopped and started again on the same port and database in the middle of a test.

    upstream = UpstreamSite(tmp_path)            # or the ``upstream_site`` fixture
    upstream.create_database(); upstream.start()
    seeded = upstream.run("seed")                # a docking site, its key, a product with keys
    ...
    upstream.stop(); upstream.start()
    upstream.docking_orders()                    # {client_order_no: status} as the upstream has them

Run as ``python -m orders.tests.two_sites <command>`` with the upstream's environment, it is the
upstream's own hand (seeding), printing JSON.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class UpstreamSite:
    def __init__(self, directory: Path, *, name_suffix: str = "upstream"):
        from django.conf import settings
        from django.db import connection

        database = connection.settings_dict
        self.directory = Path(directory)
        self.source_database = database["NAME"]
        self.database = f"{database['NAME']}_{name_suffix}"[:63]
        self.admin = {
            "host": database["HOST"] or "127.0.0.1",
            "port": int(database["PORT"] or 5432),
            "user": database["USER"],
            "password": database.get("PASSWORD") or None,
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen | None = None
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("DATABASE_") and key not in ("REDIS_URL", "TEST_DATABASE_NAME")
        }
        self.environment = environment | {
            "DJANGO_SETTINGS_MODULE": "kamen.settings.base",
            "DATABASE_URL": (
                f"postgres://{self.admin['user']}@{self.admin['host']}:{self.admin['port']}/{self.database}"
            ),
            "REDIS_URL": "",  # embedded background mode: fulfilment in-process after the commit
            "SECRET_KEY": settings.SECRET_KEY,
            "SANDBOX_GATEWAY_SECRET": settings.SANDBOX_GATEWAY_SECRET,
            "KAMEN_VAR_DIR": str(self.directory / "upstream-var"),
            "SITE_URL": self.url.rstrip("/"),
            "LOG_LEVEL": "WARNING",
        }
        if self.admin["password"]:
            self.environment["PGPASSWORD"] = self.admin["password"]

    # --- the database ------------------------------------------------------------------------
    def _admin_connection(self):
        import psycopg

        return psycopg.connect(dbname="postgres", autocommit=True, **self.admin)

    def create_database(self) -> None:
        """A copy of the (migrated, still empty) test database: call before the test writes."""
        import psycopg
        from django.db import connections
        from psycopg import sql

        connections.close_all()  # a template must have no other sessions
        with self._admin_connection() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(self.database)))
            try:
                admin.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(self.database), sql.Identifier(self.source_database)
                    )
                )
                return
            except psycopg.errors.ObjectInUse:
                # Inside the whole suite other sessions (earlier tests' threads and servers) may
                # still be open on the test database: copy it with pg_dump instead.
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        connection = ["-h", self.admin["host"], "-p", str(self.admin["port"]), "-U", self.admin["user"]]
        environment = dict(os.environ, PGPASSWORD=self.admin["password"] or "")
        dump = subprocess.run(  # noqa: S603 — PostgreSQL's own client, fixed arguments
            ["pg_dump", *connection, "--no-owner", "--no-privileges", "-d", self.source_database],  # noqa: S607
            capture_output=True, check=True, env=environment,
        )  # fmt: skip
        subprocess.run(  # noqa: S603
            ["psql", *connection, "-q", "-v", "ON_ERROR_STOP=1", "-d", self.database],  # noqa: S607
            input=dump.stdout, capture_output=True, check=True, env=environment,
        )  # fmt: skip

    def drop_database(self) -> None:
        from psycopg import sql

        with self._admin_connection() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database)))

    def docking_orders(self) -> dict[str, str]:
        """{client_order_no: the upstream order's status}, read from the upstream's database."""
        return self.run("docking-orders")

    # --- the server ------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        log = open(self.directory / "upstream-gunicorn.log", "ab")  # noqa: SIM115 — kept for the server's life
        self.process = subprocess.Popen(  # noqa: S603 — our own gunicorn, fixed arguments
            [str(GUNICORN), "kamen.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", "1", "--threads", "4"]
            + ["--timeout", "60", "--log-level", "warning", "--no-control-socket"],
            cwd=ROOT,
            env=self.environment,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}healthz", timeout=2).close()  # noqa: S310 — local
                return
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the upstream did not start; see {self.directory}/upstream-gunicorn.log"
                    ) from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    # --- the upstream's own hand -----------------------------------------------------------
    def run(self, command: str, *arguments: str) -> dict:
        done = subprocess.run(  # noqa: S603 — this module, fixed arguments
            [sys.executable, "-m", "orders.tests.two_sites", command, *arguments],
            cwd=ROOT,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"upstream {command} failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def close(self) -> None:
        self.stop()
        self.drop_database()
        shutil.rmtree(self.directory / "upstream-var", ignore_errors=True)


# --- commands run inside the upstream's environment ---------------------------------------------
def _seed(price: str = "100.00", keys: str = "5") -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from catalog.models import CardKey
    from kamen import crypto
    from orders.tests.docking_support import docked_site
    from orders.tests.factories import add_keys, make_product

    staff = get_user_model().objects.create_user(username="upstream-owner", password="kamen-test-pass", is_staff=True)
    staff.groups.add(Group.objects.get(name="owner"))
    docked = docked_site(staff=staff, prepaid="1000.00", discount_bp=8000, name="下游 Kamen")
    product = make_product(price=price, name="上游点卡")
    add_keys(product, int(keys))
    secrets = [
        crypto.decrypt(key_id=key.key_id, blob=bytes(key.secret_ciphertext))
        for key in CardKey.objects.filter(product=product)
    ]
    return {"key_id": docked.key.key_id, "secret": docked.secret, "product_id": product.pk, "secrets": secrets}


def _docking_orders() -> dict:
    from orders.api.models import DockingOrder

    return {
        row.client_order_no: row.order.status for row in DockingOrder.objects.select_related("order").order_by("id")
    }


COMMANDS = {"seed": _seed, "docking-orders": _docking_orders}

if __name__ == "__main__":
    import django

    django.setup()
    print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:])))
