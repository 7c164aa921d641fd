#!/usr/bin/env python3
"""Keep the processes of a real-mode ``make run`` running (scripts/run.sh starts this).

    supervise.py --program 'web=gunicorn kamen.wsgi ...' \\
                 --program 'worker-fulfilment=celery -A kamen worker -Q fulfilment,default ...' \\
                 --alive 'worker-fulfilment=var/run/worker-fulfilment.alive:30'

Each program runs in its own process group (a Celery worker and its pool are killed
together). A program that exits is restarted after a backoff (1 s, doubling to 30 s, back to
1 s once it ran a minute), and the exit is logged with its reason (exit code or signal). A
program with ``--alive FILE:SECONDS`` is also killed and restarted when FILE (written by
``kamen.worker_health``'s watchdog while the worker consumes) is older than SECONDS: a paused
or wedged worker. Ctrl-C, SIGTERM or SIGHUP (the terminal closed) stops every program
(SIGTERM, then SIGKILL after 10 s) and then the supervisor.

Our own ~150 lines rather than supervisord, circus or honcho: honcho stops everything when one
process exits, supervisord and circus need their own configuration files and a daemon, and
none of them can judge liveness by a heartbeat file without a plug-in; this needs only the
standard library and is tested with the rest (kamen/tests/test_supervise.py,
orders/tests/test_self_healing.py).
"""

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a run this long resets the backoff
STOP_GRACE = 10.0


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} supervise: {message}", file=sys.stderr, flush=True)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


@dataclass
class Program:
    name: str
    argv: list[str]
    alive_file: Path | None = None
    alive_within: float = 0.0
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    backoff: float = BACKOFF_START
    restarts: int = 0
    killed_for: str = ""
    history: list[str] = field(default_factory=list)

    def start(self) -> None:
        if self.alive_file is not None:
            try:
                self.alive_file.unlink()  # a stale file from the last run must not count
            except FileNotFoundError:
                pass
        self.process = subprocess.Popen(self.argv, start_new_session=True)  # noqa: S603 (run.sh's own commands)
        self.started_at = time.monotonic()
        self.killed_for = ""
        log(f"{self.name} started (pid {self.process.pid})")

    def signal_group(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def liveness_problem(self) -> str:
        """Why this program looks dead although its process runs, or ''."""
        if self.alive_file is None or self.process is None:
            return ""
        running_for = time.monotonic() - self.started_at
        try:
            written_at = float(json.loads(self.alive_file.read_text()).get("at", 0))
        except (OSError, ValueError):
            written_at = 0.0
        if not written_at:
            # Not written yet: starting up (imports, connecting to the broker). Give it the
            # window twice before judging.
            if running_for > 2 * self.alive_within:
                return f"no heartbeat {running_for:.0f} s after start"
            return ""
        age = time.time() - written_at
        if age > self.alive_within:
            return f"heartbeat {age:.0f} s old (limit {self.alive_within:.0f} s)"
        return ""


class Supervisor:
    def __init__(self, programs: list[Program]):
        self.programs = programs
        self.stopping = False

    def request_stop(self, signum, frame) -> None:
        if not self.stopping:
            log(f"{signal.Signals(signum).name}: stopping every program")
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        # A closed terminal or a dropped ssh session: the programs, each in a session of its
        # own, never see that SIGHUP, so the supervisor must not die of it and leave them behind.
        signal.signal(signal.SIGHUP, self.request_stop)
        for program in self.programs:
            program.start()
        while not self.stopping:
            self.tick()
            time.sleep(0.5)
        self.stop_all()
        return 0

    def tick(self) -> None:
        now = time.monotonic()
        for program in self.programs:
            process = program.process
            if process is None:
                if now >= program.restart_at:
                    program.restarts += 1
                    program.start()
                continue
            returncode = process.poll()
            if returncode is None:
                problem = program.liveness_problem()
                if problem:
                    program.killed_for = problem
                    log(f"{program.name} (pid {process.pid}) is not alive: {problem}; killing it")
                    program.signal_group(signal.SIGKILL)
                continue
            ran = now - program.started_at
            if ran >= STABLE_AFTER:
                program.backoff = BACKOFF_START
            reason = describe_exit(returncode)
            if program.killed_for:
                reason += f" (liveness: {program.killed_for})"
            program.history.append(reason)
            log(f"{program.name} (pid {process.pid}) {reason} after {ran:.1f} s; restarting in {program.backoff:.0f} s")
            # Whatever it left behind in its group (a pool process) goes with it.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            program.process = None
            program.restart_at = now + program.backoff
            program.backoff = min(program.backoff * 2, BACKOFF_MAX)

    def stop_all(self) -> None:
        for program in self.programs:
            program.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for program in self.programs:
            if program.process is None:
                continue
            try:
                program.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{program.name} did not stop in {STOP_GRACE:.0f} s; killing it")
                program.signal_group(signal.SIGKILL)
                program.process.wait()
        log("all stopped")


def parse(argv: list[str]) -> list[Program]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--program", action="append", default=[], metavar="NAME=COMMAND", required=True)
    parser.add_argument("--alive", action="append", default=[], metavar="NAME=FILE:SECONDS")
    options = parser.parse_args(argv)
    programs: dict[str, Program] = {}
    for spec in options.program:
        name, separator, command = spec.partition("=")
        if not separator or not name or not command.strip():
            parser.error(f"--program {spec!r}: expected NAME=COMMAND")
        programs[name] = Program(name=name, argv=shlex.split(command))
    for spec in options.alive:
        name, _separator, rest = spec.partition("=")
        path, _colon, seconds = rest.rpartition(":")
        if name not in programs or not path:
            parser.error(f"--alive {spec!r}: expected NAME=FILE:SECONDS for a --program NAME")
        programs[name].alive_file = Path(path)
        programs[name].alive_within = float(seconds)
    return list(programs.values())


if __name__ == "__main__":
    sys.exit(Supervisor(parse(sys.argv[1:])).run())
