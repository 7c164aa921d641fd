"""pgbench_tps: PostgreSQL's own TPC-B-like benchmark (pgbench, 8 clients) on a scratch database
on the same server, so Kamen's figures can be read against what this server can do at all
(issue 3 wants the order pipeline at ≥ 0.05 × this).

Omitted, with a message saying why, when pgbench is not installed.
"""

import glob
import os
import re
import shutil
import statistics
import subprocess

CLIENTS = 8
THREADS = 2
SCALE = int(os.environ.get("BENCH_PGBENCH_SCALE", "10"))  # ≥ CLIENTS: TPC-B contends on the branches
SECONDS = int(os.environ.get("BENCH_PGBENCH_SECONDS", "15"))
TPS = re.compile(r"^tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)", re.MULTILINE)


def find_pgbench() -> str | None:
    """pgbench on PATH, else the newest one PostgreSQL's Debian packages install."""
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), key=lambda path: int(path.split("/")[4]))
    return candidates[-1] if candidates else None


def _command(pgbench: str, settings: dict, database: str, *arguments: str) -> list[str]:
    command = [pgbench]
    if settings.get("HOST"):
        command += ["-h", settings["HOST"]]
    if settings.get("PORT"):
        command += ["-p", str(settings["PORT"])]
    if settings.get("USER"):
        command += ["-U", settings["USER"]]
    return [*command, *arguments, database]


def _run(command: list[str], settings: dict) -> str:
    environment = {**os.environ, "PGPASSWORD": settings.get("PASSWORD") or ""}
    completed = subprocess.run(command, check=False, capture_output=True, text=True, env=environment, timeout=SECONDS * 4 + 300)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:1] + command[-3:])} failed: {completed.stderr.strip()[-500:]}")
    return completed.stdout


def run(repeats: int) -> dict[str, float]:
    from django.db import connection

    pgbench = find_pgbench()
    if pgbench is None:
        print("pgbench_tps omitted: pgbench is not installed (Debian: apt-get install postgresql-client or postgresql)")
        return {}
    settings = connection.settings_dict
    scratch = f"{settings['NAME']}_pgbench"
    quoted = connection.ops.quote_name(scratch)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {quoted}")
    try:
        _run(_command(pgbench, settings, scratch, "-i", "-q", "-s", str(SCALE)), settings)
        rates = []
        for _repeat in range(repeats):
            output = _run(_command(pgbench, settings, scratch, "-c", str(CLIENTS), "-j", str(THREADS), "-T", str(SECONDS)), settings)
            match = TPS.search(output)
            if match is None:
                raise RuntimeError(f"no tps in pgbench's output: {output[-300:]}")
            rates.append(float(match.group(1)))
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    print(f"pgbench_tps runs (TPC-B, {CLIENTS} clients, scale {SCALE}, {SECONDS} s): {[round(rate) for rate in rates]}")
    return {"pgbench_tps": round(statistics.median(rates), 1)}
