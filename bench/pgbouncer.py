"""PgBouncer in transaction mode in front of a PostgreSQL server, as docker compose puts it
(issue 15 §4, docs/adr/0015-beyond-one-machine.md).

Tests start Debian's ``pgbouncer`` as a foreground subprocess of their own — never the system
service — with a generated config in a temporary directory: it listens on a free loopback port,
passes every database name through to the server (``* = host=… port=…``), pools in
transaction mode with few server connections (so the clients' transactions really hop between
them), and keeps its log and pid file in that directory. PgBouncer refuses to run as root: it
then runs as ``nobody`` (the directory is made theirs).
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "pgbouncer is not installed: `apt-get install pgbouncer` (Debian; never started as a service here)"


def pgbouncer_binary() -> str | None:
    """The pgbouncer executable, or None (Debian puts it in /usr/sbin)."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    return "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None


def pgbouncer_version(binary: str) -> tuple[int, int]:
    text = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout  # noqa: S603
    major, minor = re.search(r"PgBouncer (\d+)\.(\d+)", text).groups()
    return int(major), int(minor)


def pgbouncer_config(
    *,
    directory: Path,
    port: int,
    server_host: str,
    server_port: int,
    user: str,
    pool_size: int,
    version: tuple[int, int],
) -> str:
    lines = [
        "[databases]",
        f"* = host={server_host} port={server_port}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {directory / 'users.txt'}",
        f"admin_users = {user}",
        "pool_mode = transaction",
        "max_client_conn = 500",
        f"default_pool_size = {pool_size}",
        "reserve_pool_size = 0",
        # Django's connections set extra_float_digits on some drivers; PgBouncer need not know.
        "ignore_startup_parameters = extra_float_digits,options",
        f"logfile = {directory / 'pgbouncer.log'}",
        f"pidfile = {directory / 'pgbouncer.pid'}",
        "log_connections = 0",
        "log_disconnections = 0",
    ]
    if version >= (1, 21):
        # Protocol-level prepared statements (psycopg 3's automatic prepares) are tracked per
        # client from 1.21 on; SQL-level PREPARE never is.
        lines.append("max_prepared_statements = 200")
    return "\n".join(lines) + "\n"


@dataclass
class Pooler:
    process: subprocess.Popen
    port: int
    directory: Path
    version: tuple[int, int]

    def url(self, *, user: str, name: str) -> str:
        return f"postgres://{user}@127.0.0.1:{self.port}/{name}"

    def log(self, lines: int = 30) -> str:
        try:
            text = (self.directory / "pgbouncer.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def show(self, what: str, *, user: str) -> list[dict]:
        """``SHOW <what>`` on PgBouncer's admin console (simple query protocol, autocommit)."""
        import psycopg

        # The admin console speaks the simple query protocol only: a client-side-binding cursor.
        with contextlib.closing(
            psycopg.connect(
                host="127.0.0.1", port=self.port, dbname="pgbouncer", user=user, cursor_factory=psycopg.ClientCursor
            )
        ) as console:
            console.autocommit = True
            with console.cursor() as cursor:
                cursor.execute(f"SHOW {what}")
                names = [column.name for column in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_pgbouncer(
    *, server_host: str, server_port: int, user: str, pool_size: int = 2, timeout: float = 10
) -> Pooler:
    """PgBouncer (transaction mode) in front of ``server_host:server_port``, answering when this
    returns. Clients connect as ``user`` without a password (the server must trust it).
    Raises FileNotFoundError if pgbouncer is not installed, RuntimeError if it does not start."""
    binary = pgbouncer_binary()
    if binary is None:
        raise FileNotFoundError(INSTALL_HINT)
    version = pgbouncer_version(binary)
    # Under /tmp itself: pytest's temporary directories are closed to ``nobody``.
    directory = Path(tempfile.mkdtemp(prefix="kamen-pgbouncer-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(directory, "nobody")
        run_as = ["runuser", "-u", "nobody", "--"]
    port = _free_port()
    (directory / "users.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        pgbouncer_config(
            directory=directory,
            port=port,
            server_host=server_host,
            server_port=server_port,
            user=user,
            pool_size=pool_size,
            version=version,
        )
    )
    for path in directory.iterdir():
        path.chmod(0o644)
    process = subprocess.Popen(  # noqa: S603 (Debian's pgbouncer, our config)
        [*run_as, binary, str(directory / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    pooler = Pooler(process=process, port=port, directory=directory, version=version)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = pooler.log()
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return pooler
        time.sleep(0.1)
    log = pooler.log()
    pooler.stop()
    raise RuntimeError(f"pgbouncer did not listen within {timeout} s:\n{log}")
