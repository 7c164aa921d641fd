"""Memory of a Celery worker's main process under a steady stream of small tasks (issue 26).

    python -m bench.worker_memory --seconds 180 --rate 40 [--defaults]

Starts a private redis-server and one worker (``-Q fulfilment,default``, concurrency 2) with
the options ``make run`` uses, or Celery's defaults (``--defaults``: gossip, mingle and event
heartbeats on, no watchdog), sends ``--rate`` heartbeat tasks a second (the smallest task that
goes through the whole path: broker, consumer, pool) and prints the main process's resident and
private memory every 15 s. Needs nothing but redis-server: no database is touched.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from celery import Celery


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident, private) in MiB, from /proc/PID/smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return fields["Rss"] / 1024, (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--rate", type=float, default=40)
    parser.add_argument("--defaults", action="store_true", help="Celery's defaults, as make run was before")
    parser.add_argument("--trace", action="store_true", help="growth by object type into the temp dir")
    options = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="kamen-worker-memory-"))
    port = _free_port()
    redis = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "REDIS_URL": url, "KAMEN_WORKER_ALIVE_FILE": str(directory / "w.alive")}
    env.setdefault("DJANGO_SETTINGS_MODULE", "kamen.settings.test")
    argv = [str(Path(sys.executable).with_name("celery")), "-A", "kamen", "worker", "--loglevel=WARNING"]
    argv += ["-Q", "fulfilment,default", "-n", f"memory-{os.getpid()}@%h", "--concurrency=2"]
    if options.trace:
        env |= {"KAMEN_TRACE_FILE": str(directory / "trace.txt")}
        argv += ["--include", "bench.worker_trace"]
        print(f"allocation growth: {directory / 'trace.txt'}")
    if options.defaults:
        env["KAMEN_WORKER_WATCHDOG"] = "0"
    else:
        argv += ["--max-tasks-per-child=2000", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(directory / "worker.log", "w"))
    app = Celery(broker=url)
    try:
        time.sleep(8)
        started = time.monotonic()
        sent = 0
        next_report = 0.0
        print(f"{'s':>5} {'sent':>7} {'rss MB':>7} {'private MB':>10} {'queued':>6}")
        with app.producer_or_acquire() as producer:
            while (elapsed := time.monotonic() - started) < options.seconds:
                due = int(elapsed * options.rate) - sent
                for _ in range(due):
                    app.send_task(
                        "kamen.worker_health.heartbeat",
                        kwargs={"hostname": "bench", "sent_at": time.time()},
                        queue="fulfilment",
                        producer=producer,
                    )
                sent += max(due, 0)
                if elapsed >= next_report:
                    rss, private = memory_mb(worker.pid)
                    queued = app.connection().default_channel.client.llen("fulfilment")
                    print(f"{elapsed:5.0f} {sent:7d} {rss:7.1f} {private:10.1f} {queued:6d}", flush=True)
                    next_report += 15
                time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        redis.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
