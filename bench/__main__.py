"""Run every benchmark on a fresh PostgreSQL database, print medians, merge bench-results.json.

Add a benchmark: a module in this package with ``run(repeats: int) -> dict[str, float]``
(medians), listed in BENCHMARKS.
"""

import importlib
import json
import os
import sys
from pathlib import Path

BENCHMARKS = ["bench.card_key_import", "bench.risk_check"]
RESULTS = Path(__file__).resolve().parent.parent / "bench-results.json"


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kamen.settings.test")
    os.environ.setdefault("TEST_DATABASE_NAME", "kamen_bench")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    print(f"benchmark database: {database}")
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    figures: dict[str, float] = {}
    try:
        for name in BENCHMARKS:
            figures.update(importlib.import_module(name).run(repeats))
    finally:
        connection.creation.destroy_test_db(database, verbosity=0)
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored.update(figures)
    RESULTS.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    width = max(len(name) for name in figures)
    print(f"\n{'figure':<{width}}  median")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:,.1f}")
    print(f"\nwritten to {RESULTS.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
