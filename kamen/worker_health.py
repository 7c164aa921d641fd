"""Celery worker liveness, and loops that run inside every worker whatever the broker does.

A worker process can be alive and still consume nothing: Celery's Redis transport sometimes
stops consuming after a broker reset without exiting (celery/celery#10205 and relatives), and a
paused or wedged process looks alive to ``ps``. So liveness here is proved by consumption: a
watchdog thread in the worker's main process sends a heartbeat task to the worker's own direct
queue (``worker_direct``, consumed on the same connection as ``fulfilment``) every few seconds;
a pool process runs it and stamps a file. When a heartbeat the broker accepted has not been
consumed within ``KAMEN_WORKER_STALE_SECONDS``, the worker shuts itself down so that its
supervisor (``scripts/supervise.py`` under ``make run``, the container's restart policy) starts a
fresh one. While the broker is unreachable no heartbeat is accepted, so nothing is judged.

The watchdog also writes ``KAMEN_WORKER_ALIVE_FILE`` on every tick while the worker is
healthy. A supervisor that sees that file go stale (a frozen process: SIGSTOP, a deadlock
holding the GIL) kills the worker from outside: ``python -m kamen.worker_health check``.

Apps register loops (``register_worker_loop``) that every worker runs in a thread of its main
process, on the database only: the order recovery loop uses it, so a paid order is fulfilled
even when the broker lost its message or the worker holding it died (ADR 0013).

This module imports nothing from Django at import time: the check runs without settings.
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

HEARTBEAT_TASK = "kamen.worker_health.heartbeat"


@dataclass
class WorkerLoop:
    name: str
    interval_seconds: float
    func: Callable[[], object]


_loops: dict[str, WorkerLoop] = {}


def register_worker_loop(*, name: str, interval_seconds: float, func: Callable[[], object]) -> None:
    """Run ``func`` every ``interval_seconds`` in every Celery worker's main process (a thread
    per loop). ``func`` must be idempotent and cheap when there is nothing to do: every worker
    runs it."""
    _loops[name] = WorkerLoop(name=name, interval_seconds=interval_seconds, func=func)


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


def alive_file(hostname: str = "") -> Path:
    configured = os.environ.get("KAMEN_WORKER_ALIVE_FILE")
    if configured:
        return Path(configured)
    from django.conf import settings

    return Path(settings.VAR_DIR) / "run" / f"{hostname.replace('/', '_')}.alive"


def consumed_file(alive: Path) -> Path:
    return alive.with_name(alive.name + ".consumed")


def _write_atomically(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload))
    os.replace(temporary, path)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def record_heartbeat(*, hostname: str, sent_at: float) -> None:
    """The heartbeat task's body, in a pool process: the message went broker → consumer → pool."""
    path = consumed_file(alive_file(hostname))
    if _read(path).get("sent_at", 0) < sent_at:
        _write_atomically(path, {"sent_at": sent_at, "consumed_at": time.time(), "pid": os.getpid()})


class Watchdog:
    """In the worker's main process: heartbeats through the broker, the alive file, the loops."""

    def __init__(self, *, app, hostname: str):
        self.app = app
        self.hostname = hostname
        self.alive = alive_file(hostname)
        self.consumed = consumed_file(self.alive)
        self.interval = _env_float("KAMEN_WORKER_HEARTBEAT_SECONDS", 5)
        self.stale_after = _env_float("KAMEN_WORKER_STALE_SECONDS", 30)
        self.stopping = threading.Event()
        self.pending_since: float | None = None  # first accepted heartbeat not yet consumed
        self.broker_reachable = True
        self.threads: list[threading.Thread] = []
        self.max_main_rss_mb = _env_float("KAMEN_WORKER_MAX_MAIN_RSS_MB", 400)
        self.restarting_for_memory = False

    def start(self) -> None:
        try:
            self.consumed.unlink()
        except FileNotFoundError:
            pass
        self._spawn("kamen-watchdog", self._watch)
        for loop in _loops.values():
            self._spawn(f"kamen-loop-{loop.name}", self._run_loop, loop)
        logger.info(
            "worker.watchdog_started",
            extra={"hostname": self.hostname, "loops": sorted(_loops), "stale_after": self.stale_after},
        )

    def stop(self) -> None:
        self.stopping.set()

    def _spawn(self, name, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _watch(self) -> None:
        last_sent = 0.0
        while not self.stopping.wait(1.0):
            now = time.time()
            consumed_sent_at = _read(self.consumed).get("sent_at", 0)
            if self.pending_since is not None and consumed_sent_at >= self.pending_since:
                self.pending_since = None
            if self.pending_since is not None and now - self.pending_since > self.stale_after:
                self._give_up(now - self.pending_since)
                return
            if now - last_sent >= self.interval:
                last_sent = now
                self._send_heartbeat(now)
                self._bound_memory()
            _write_atomically(
                self.alive,
                {
                    "pid": os.getpid(),
                    "hostname": self.hostname,
                    "at": now,
                    "broker_reachable": self.broker_reachable,
                    "consumed_at": _read(self.consumed).get("consumed_at"),
                },
            )

    def _send_heartbeat(self, now: float) -> None:
        from celery.utils.nodenames import worker_direct

        try:
            self.app.send_task(
                HEARTBEAT_TASK,
                kwargs={"hostname": self.hostname, "sent_at": now},
                queue=worker_direct(self.hostname),
                retry=False,
                expires=self.stale_after * 4,
            )
        except Exception as error:  # broker unreachable: not this worker's fault, judge nothing
            if self.broker_reachable:
                logger.warning("worker.broker_unreachable", extra={"error": error.__class__.__name__})
            self.broker_reachable = False
            self.pending_since = None
            return
        self.broker_reachable = True
        if self.pending_since is None:
            self.pending_since = now

    def _bound_memory(self) -> None:
        """The main process above KAMEN_WORKER_MAX_MAIN_RSS_MB: a warm shutdown (running tasks
        finish, the rest go back to the queue) and the supervisor starts a fresh one. Pool
        processes have Celery's own --max-memory-per-child."""
        rss_mb = resident_mb(os.getpid())
        if self.restarting_for_memory or not self.max_main_rss_mb or rss_mb <= self.max_main_rss_mb:
            return
        self.restarting_for_memory = True
        logger.warning("worker.main_rss_limit", extra={"hostname": self.hostname, "rss_mb": round(rss_mb)})
        os.kill(os.getpid(), signal.SIGTERM)

    def _give_up(self, waited: float) -> None:
        """Accepted heartbeats go unconsumed: stop this worker (cold shutdown: the pool is
        terminated, unacknowledged messages go back) so the supervisor replaces it; if the
        shutdown itself hangs, exit hard."""
        logger.error(
            "worker.not_consuming",
            extra={"hostname": self.hostname, "waited_seconds": round(waited, 1)},
        )
        print(f"kamen watchdog: {self.hostname} consumed nothing for {waited:.0f} s; exiting", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGQUIT)
        time.sleep(_env_float("KAMEN_WORKER_EXIT_GRACE_SECONDS", 10))
        _kill_children(os.getpid())
        os._exit(70)

    def _run_loop(self, loop: WorkerLoop) -> None:
        from django.db import close_old_connections, connection

        while not self.stopping.wait(loop.interval_seconds):
            close_old_connections()
            try:
                loop.func()
            except Exception:
                logger.exception("worker.loop_failed", extra={"loop": loop.name})
                connection.close()  # a broken connection is opened afresh next time


def resident_mb(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _kill_children(pid: int) -> None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return
    for child in children:
        try:
            os.kill(int(child), signal.SIGKILL)
        except (OSError, ValueError):
            pass


_watchdog: Watchdog | None = None


def on_worker_ready(sender=None, **kwargs) -> None:
    """``worker_ready``: start the watchdog and the loops (main process, after the pool forked)."""
    global _watchdog
    if os.environ.get("KAMEN_WORKER_WATCHDOG", "1") == "0":
        return
    _watchdog = Watchdog(app=sender.app, hostname=sender.hostname)
    _watchdog.start()


def on_worker_shutdown(**kwargs) -> None:
    if _watchdog is not None:
        _watchdog.stop()


# --- The check, for supervisors and container health checks ---------------------------------


def check(*, path: Path, max_age: float, kill: bool = False) -> tuple[bool, str]:
    """Healthy when the worker's watchdog wrote the alive file less than ``max_age`` seconds
    ago. ``kill``: when not, SIGKILL the worker named in the file (its pool goes with it, and
    the container or supervisor restarts it)."""
    state = _read(path)
    if not state:
        return False, f"no alive file at {path}"
    age = time.time() - float(state.get("at", 0))
    if age <= max_age:
        return True, f"alive {age:.1f} s ago, last heartbeat consumed at {state.get('consumed_at')}"
    if kill and state.get("pid"):
        _kill_children(int(state["pid"]))
        try:
            os.kill(int(state["pid"]), signal.SIGKILL)
        except OSError:
            pass
    return False, f"alive file {age:.0f} s old"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kamen.worker_health")
    sub = parser.add_subparsers(dest="command", required=True)
    checker = sub.add_parser("check", help="exit 0 when the worker's watchdog is fresh")
    checker.add_argument("--file", default=os.environ.get("KAMEN_WORKER_ALIVE_FILE", ""))
    checker.add_argument("--max-age", type=float, default=_env_float("KAMEN_WORKER_ALIVE_MAX_AGE", 30))
    checker.add_argument("--kill", action="store_true", help="SIGKILL the worker when stale")
    options = parser.parse_args(argv)
    if not options.file:
        parser.error("--file (or KAMEN_WORKER_ALIVE_FILE) is required")
    healthy, message = check(path=Path(options.file), max_age=options.max_age, kill=options.kill)
    print(message)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
