"""Two overlapping runs of one periodic job in a process whose ``DATABASE_URL`` is PgBouncer in
transaction mode (run by kamen/tests/test_behind_pgbouncer.py). Prints JSON: what each run
returned and which ran.

    python -m kamen.tests.pooled_job_probe
"""

import json
import threading

import django

django.setup()

from django.db import connection, connections  # noqa: E402

from kamen.periodic import exclusive_periodic_job  # noqa: E402


def main() -> dict:
    inside, release = threading.Event(), threading.Event()
    runs: list[str] = []

    @exclusive_periodic_job
    def settle():
        runs.append(threading.current_thread().name)
        with connection.cursor() as cursor:  # the job's own work, through the pooler
            cursor.execute("SELECT 1")
        inside.set()
        release.wait(10)
        return "done"

    results = {}

    def first():
        results["first"] = settle()
        connections.close_all()

    worker = threading.Thread(target=first, name="first")
    worker.start()
    inside.wait(10)
    second = settle()  # as another host would, while the first run goes on
    release.set()
    worker.join(10)
    after = settle()  # the next period
    return {"first": results.get("first"), "second": second, "after": after, "runs": runs}


if __name__ == "__main__":
    print(json.dumps(main()))
