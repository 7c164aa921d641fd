"""PostgreSQL restarts under a running shop: a real gunicorn against a throwaway cluster (never
the shared server). While the database is down, pages answer 503 with Retry-After; after the
restart the next request works on a fresh connection, without restarting the web process."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    return Path(found).parent if found else None


PG_BIN = _postgres_bin()
pytestmark = pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server programs are not installed")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(probe, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            probe()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class ThrowawayCluster:
    """initdb + pg_ctl in a temporary directory, as ``scripts/test.sh`` does (as ``nobody`` when
    run as root, which PostgreSQL refuses)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.data = directory / "pg"
        self.port = _free_port()
        self.run_as = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        if self.run_as:
            shutil.chown(directory, "nobody")
            directory.chmod(0o777)

    def _pg(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self.run_as, str(PG_BIN / program), *args], capture_output=True, text=True, cwd=self.directory
        )
        if done.returncode:
            raise RuntimeError(f"{program} failed: {done.stderr.strip()[-500:]}")

    def init(self) -> None:
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "pg.log"), "-w", "start")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"


def _get(url: str):
    try:
        response = urllib.request.urlopen(url, timeout=30)  # noqa: S310 — http://127.0.0.1 only
    except urllib.error.HTTPError as error:
        response = error
    return response.status, response.headers, response.read().decode("utf-8", "replace")


@pytest.fixture
def throwaway_directory():
    """Under /tmp itself: pytest's own temporary directories are closed to ``nobody``."""
    directory = Path(tempfile.mkdtemp(prefix="kamen-pg-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def shop_on_a_throwaway_cluster(throwaway_directory):
    tmp_path = throwaway_directory
    cluster = ThrowawayCluster(tmp_path)
    cluster.init()
    cluster.start()
    try:
        import psycopg

        admin = psycopg.connect(cluster.url("postgres"))
        admin.autocommit = True
        admin.cursor().execute("CREATE DATABASE kamen")
        admin.close()
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"REDIS_URL", "TEST_DATABASE_NAME", "DJANGO_SETTINGS_MODULE"}
        } | {
            "DJANGO_SETTINGS_MODULE": "kamen.settings.base",
            "DATABASE_URL": cluster.url("kamen"),
            "DATABASE_CONN_MAX_AGE": "60",
            "KAMEN_VAR_DIR": str(tmp_path / "var"),
            "KAMEN_ENCRYPTION_KEYS": "t1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "KAMEN_BLIND_INDEX_KEY": "YmxpbmQtaW5kZXgta2V5LWZvci10ZXN0cy0wMDAwMDA=",
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        port = _free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "kamen.wsgi", "-b", f"127.0.0.1:{port}", "--no-control-socket"]
            + ["-w", "1", "--threads", "2", "--timeout", "60", "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close(), 60)
            yield f"http://127.0.0.1:{port}", cluster
        finally:
            server.terminate()
            server.wait(timeout=20)
    finally:
        try:
            cluster.stop()
        except RuntimeError:
            pass


def test_a_postgresql_restart_gives_503_with_retry_after_and_the_next_request_works(shop_on_a_throwaway_cluster):
    base, cluster = shop_on_a_throwaway_cluster
    assert _get(f"{base}/")[0] == 200  # the web process now holds a persistent connection

    cluster.restart()  # that connection is gone
    after_restart = _get(f"{base}/")

    cluster.stop()
    while_down = [_get(f"{base}/"), _get(f"{base}/orders/K1/status.json")]
    health = _get(f"{base}/healthz")

    cluster.start()
    back = _get(f"{base}/")

    assert after_restart[0] == 200
    assert [(status, headers["Retry-After"]) for status, headers, _body in while_down] == [(503, "5"), (503, "5")]
    assert "系统繁忙" in while_down[0][2] and 'class="site-header"' in while_down[0][2]
    assert health[0] == 503 and '"database": "error"' in health[2]
    assert back[0] == 200
