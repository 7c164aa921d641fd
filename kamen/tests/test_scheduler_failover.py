"""One scheduler across hosts: two `celery beat` processes against one Redis, the active one
killed (SIGKILL: the host died, nothing released) → the other takes the lock when it expires and
the job goes on; no period is sent twice, before, during or after the takeover (issue 25)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import redis
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
PERIOD = 2.0
LOCK_SECONDS = 6
MAX_INTERVAL = 1


class QueueWatcher(threading.Thread):
    """Takes the probe's messages off its queue as they arrive and notes when each came."""

    def __init__(self, client, queue):
        super().__init__(daemon=True)
        self.client, self.queue = client, queue
        self.arrivals: list[float] = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            item = self.client.blpop([self.queue], timeout=0.2)
            if item is not None:
                headers = json.loads(item[1])["headers"]
                assert headers["task"] == "kamen.tests.scheduler_probe"
                self.arrivals.append(time.monotonic())

    def wait_for(self, count, timeout):
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.arrivals) >= count


def start_beat(name, tmp_path, prefix, queue):
    environment = dict(os.environ) | {
        "DJANGO_SETTINGS_MODULE": "kamen.settings.test",
        "REDIS_URL": settings.REDIS_URL,
        "KAMEN_BEAT_KEY_PREFIX": prefix,
        "KAMEN_BEAT_LOCK_SECONDS": str(LOCK_SECONDS),
        "KAMEN_BEAT_MAX_INTERVAL_SECONDS": str(MAX_INTERVAL),
        "PROBE_PERIOD_SECONDS": str(PERIOD),
        "PROBE_QUEUE": queue,
    }
    log = open(tmp_path / f"beat-{name}.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "kamen.tests.beat_probe_app",
            "beat",
            "--loglevel=INFO",
            f"--schedule={tmp_path / f'schedule-{name}'}",
        ],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, tmp_path / f"beat-{name}.log"


def wait_for_line(path, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return True
        time.sleep(0.1)
    return False


def test_the_standby_scheduler_takes_over_when_the_active_one_dies_and_sends_no_period_twice(tmp_path):
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix, queue = f"kamen:test-beat:{uuid.uuid4().hex[:8]}", f"probe-{uuid.uuid4().hex[:8]}"
    watcher = QueueWatcher(client, queue)
    watcher.start()
    first, first_log = start_beat("a", tmp_path, prefix, queue)
    second = None
    try:
        # given a beat holding the lock and sending the probe
        assert wait_for_line(first_log, "Acquired lock", 60), first_log.read_text()[-2000:]
        assert watcher.wait_for(1, 30)
        # and a second beat on another "host", waiting for the lock
        second, second_log = start_beat("b", tmp_path, prefix, queue)
        assert watcher.wait_for(4, 30)
        assert "Acquired lock" not in second_log.read_text()

        # when the active one's host dies
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = time.monotonic()
        sent_before = len(watcher.arrivals)

        # then the standby takes the lock within its expiry and the probe goes on
        assert wait_for_line(second_log, "Acquired lock", LOCK_SECONDS + MAX_INTERVAL + 10), second_log.read_text()
        assert watcher.wait_for(sent_before + 3, LOCK_SECONDS + MAX_INTERVAL + 3 * PERIOD + 10)
        first_after = next(arrival for arrival in watcher.arrivals if arrival > killed_at)
        assert first_after - killed_at <= LOCK_SECONDS + MAX_INTERVAL + PERIOD + 1.5
        # and no period was sent twice: consecutive sends are a period apart, never closer
        gaps = [later - earlier for earlier, later in zip(watcher.arrivals, watcher.arrivals[1:], strict=False)]
        assert min(gaps) >= PERIOD - 0.3, gaps
    finally:
        watcher.stopping.set()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
        watcher.join(5)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.delete(queue)
