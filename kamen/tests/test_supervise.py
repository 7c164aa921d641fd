"""scripts/supervise.py, the supervisor of a real-mode make run: exits are logged with their
reason and restarted with backoff, a program whose alive file goes stale is killed and
restarted, Ctrl-C stops everything."""

import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "supervise.py"


def _supervise(tmp_path, *arguments):
    log = (tmp_path / "supervise.log").open("w")
    process = subprocess.Popen([sys.executable, SCRIPT, *arguments], stdout=log, stderr=subprocess.STDOUT)
    return process, tmp_path / "supervise.log"


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _stop(process):
    process.send_signal(signal.SIGINT)
    return process.wait(20)


def test_a_program_that_exits_is_restarted_with_backoff_and_its_reason_logged(tmp_path):
    process, log = _supervise(tmp_path, "--program", f"failing={sys.executable} -c 'import sys; sys.exit(3)'")
    try:
        assert _wait_for(lambda: log.read_text().count("started") >= 3, 15)
    finally:
        assert _stop(process) == 0

    text = log.read_text()
    assert "failing (pid" in text and "exited with code 3" in text
    assert "restarting in 1 s" in text and "restarting in 2 s" in text


def test_a_program_whose_alive_file_goes_stale_is_killed_and_restarted(tmp_path):
    alive = tmp_path / "sleeper.alive"  # never written: the program is alive to ps only
    sleeper = f"sleeper={sys.executable} -c 'import time; time.sleep(60)'"
    process, log = _supervise(tmp_path, "--program", sleeper, "--alive", f"sleeper={alive}:1")
    try:
        assert _wait_for(lambda: "killed by SIGKILL (liveness: no heartbeat" in log.read_text(), 15)
    finally:
        _stop(process)
    assert "is not alive" in log.read_text()


def test_ctrl_c_stops_every_program(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = f'import os, time; open("{pid_file}", "w").write(str(os.getpid())); time.sleep(60)'
    program = f"sleeper={sys.executable} -c '{code}'"
    process, log = _supervise(tmp_path, "--program", program)
    assert _wait_for(pid_file.exists, 10) and _wait_for(lambda: pid_file.read_text(), 5)
    child = int(pid_file.read_text())

    assert _stop(process) == 0

    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
    assert "all stopped" in log.read_text()


def test_closing_the_terminal_stops_every_program_too(tmp_path):
    # Closing the terminal (or an ssh session dropping) sends SIGHUP to the foreground group,
    # i.e. make and the supervisor only: the programs run in sessions of their own. A
    # supervisor that died of it would leave gunicorn on the port and the workers consuming.
    pid_file = tmp_path / "child.pid"
    code = f'import os, time; open("{pid_file}", "w").write(str(os.getpid())); time.sleep(60)'
    process, log = _supervise(tmp_path, "--program", f"sleeper={sys.executable} -c '{code}'")
    assert _wait_for(pid_file.exists, 10) and _wait_for(lambda: pid_file.read_text(), 5)
    child = int(pid_file.read_text())

    process.send_signal(signal.SIGHUP)
    process.wait(20)

    alive = Path(f"/proc/{child}").exists() and "zombie" not in Path(f"/proc/{child}/status").read_text().lower()
    if alive:
        subprocess.run(["kill", "-9", str(child)], check=False)
    assert not alive, "a program outlived its supervisor"
    assert "SIGHUP: stopping every program" in log.read_text()
