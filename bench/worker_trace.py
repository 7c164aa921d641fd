"""Loaded into a Celery worker by ``bench.worker_memory --trace`` (``--include``): every 60 s
the main process appends to KAMEN_TRACE_FILE the object types whose live count grew most since
the first count (after warm-up), and the size of a few Celery and kombu structures."""

import gc
import os
import threading
import time
from collections import Counter

from celery.signals import worker_ready


def _counts() -> Counter:
    return Counter(type(obj).__name__ for obj in gc.get_objects())


@worker_ready.connect
def _trace(sender=None, **kwargs):
    consumer = sender

    def run():
        time.sleep(30)
        first = _counts()
        while True:
            time.sleep(60)
            now = _counts()
            grown = sorted(((now[name] - first[name], name) for name in now), reverse=True)[:12]
            from celery.worker import state

            total = sum(now.values())
            lines = [
                f"--- {time.strftime('%H:%M:%S')} objects {total} (+{total - sum(first.values())})",
                "    grown: " + ", ".join(f"{name} +{diff}" for diff, name in grown if diff > 0),
                f"    state: requests {len(state.requests)} active {len(state.active_requests)} "
                f"reserved {len(state.reserved_requests)} successful {len(state.successful_requests)} "
                f"revoked {len(state.revoked)} total {dict(state.total_count)}",
                f"    timer queue {len(consumer.timer.queue) if consumer and consumer.timer else '?'}",
            ]
            with open(os.environ["KAMEN_TRACE_FILE"], "a") as handle:
                handle.write("\n".join(lines) + "\n")

    threading.Thread(target=run, daemon=True).start()
