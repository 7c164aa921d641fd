"""The embedded default's private PostgreSQL (kamen/private_postgres.py) where a user would
notice: a run after a crash whose old server pid now belongs to another process, a checkout
the unprivileged server user cannot reach (as root), a var/ path too long for a socket.
test_embedded_mode.py drives the whole `make run`."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from kamen import private_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def open_dir():
    """A directory the server's user (nobody, as root) may enter; pytest's tmp_path is closed."""
    directory = Path(tempfile.mkdtemp(prefix="kamen-pg-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _query(var: Path, sql: str):
    settings = private_postgres.database_settings(var)
    connection = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], dbname=settings["NAME"], user=settings["USER"]
    )
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


def test_a_running_server_is_reused_and_a_stale_pid_naming_a_stranger_does_not_stop_a_start(open_dir):
    var = open_dir / "var"
    server = private_postgres.start(var, quiet=True)
    try:
        assert private_postgres.start(var, quiet=True) == server  # left by a killed run: reused
        _query(var, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        os.kill(server, 9)
        stranger = subprocess.Popen(["sleep", "60"])  # the old pid, reused by an unrelated process
        try:
            pid_file = var / "postgres" / "data" / "postmaster.pid"
            lines = pid_file.read_text().split("\n")
            pid_file.write_text("\n".join([str(stranger.pid), *lines[1:]]))
            assert private_postgres.running_pid(var) is None  # not taken for our server

            private_postgres.start(var, quiet=True)

            assert _query(var, "SELECT n FROM kept") == [(42,)]
            assert stranger.poll() is None  # left alone
        finally:
            stranger.kill()
            stranger.wait()
    finally:
        private_postgres.stop(var)
    assert private_postgres.running_pid(var) is None


def test_a_var_path_too_long_for_a_socket_puts_the_socket_in_tmp(open_dir):
    var = open_dir / ("v" * 90) / "var"
    var.parent.mkdir()
    var.parent.chmod(0o755)
    private_postgres.start(var, quiet=True)
    try:
        sockets = private_postgres.socket_dir(var)
        assert str(sockets).startswith("/tmp/kamen-postgres-")
        assert oct(sockets.stat().st_mode & 0o777) == "0o700"
        assert _query(var, "SELECT 1") == [(1,)]
    finally:
        private_postgres.stop(var)
        shutil.rmtree(private_postgres.socket_dir(var), ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_as_root_a_checkout_closed_to_others_runs_its_cluster_beside_it_and_is_left_as_it_is(open_dir, monkeypatch):
    """make run from a clone under /root (mode 0700): the server's user cannot pass, so the
    cluster lives under KAMEN_ROOT_POSTGRES_DIR instead; the checkout's modes are not touched."""
    closed = open_dir / "home"
    (closed / "kamen").mkdir(parents=True)
    closed.chmod(0o700)
    monkeypatch.setenv("KAMEN_ROOT_POSTGRES_DIR", str(open_dir / "lib"))
    var = closed / "kamen" / "var"

    try:
        private_postgres.start(var, quiet=True)
        _query(var, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        private_postgres.stop(var)
        private_postgres.start(var, quiet=True)  # the next run finds the same cluster
        assert _query(var, "SELECT n FROM kept") == [(7,)]
    finally:
        private_postgres.stop(var)
        shutil.rmtree(private_postgres.socket_dir(var), ignore_errors=True)

    assert private_postgres.cluster_dir(var).parent == open_dir / "lib"
    assert closed.stat().st_mode & 0o777 == 0o700
    assert not (var / "postgres").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_as_root_programs_closed_to_the_server_user_are_named(open_dir, monkeypatch):
    closed = open_dir / "bin-home"
    programs = closed / "bin"
    programs.mkdir(parents=True)
    for name in ("postgres", "initdb"):
        (programs / name).write_text("#!/bin/sh\n")
        (programs / name).chmod(0o755)
    closed.chmod(0o700)
    monkeypatch.setenv("KAMEN_POSTGRES_BIN", str(programs))

    with pytest.raises(private_postgres.ClusterError, match=f"{closed} is closed to other users.*chmod o\\+x {closed}"):
        private_postgres.start(open_dir / "var", quiet=True)
    assert not (open_dir / "var" / "postgres" / "data").exists()


def test_a_second_make_run_leaves_the_first_runs_server_up_and_the_first_stops_it(open_dir):
    var = open_dir / "var"
    env = dict(os.environ, KAMEN_VAR_DIR=str(var))
    first = subprocess.Popen(
        [sys.executable, "-m", "kamen.private_postgres", "run", "--", "sleep", "120"], env=env, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 60
        while private_postgres.running_pid(var) is None:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        server = private_postgres.running_pid(var)

        assert private_postgres.run(["true"], var) == 0  # e.g. a second make run whose port was taken

        assert private_postgres.running_pid(var) == server
        first.send_signal(signal.SIGTERM)
        first.wait(30)
        assert private_postgres.running_pid(var) is None
    finally:
        first.kill()
        private_postgres.stop(var)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_as_root_the_wheels_programs_in_a_closed_virtualenv_are_copied_where_the_server_user_may_run_them(
    open_dir, monkeypatch
):
    monkeypatch.setenv("KAMEN_ROOT_POSTGRES_DIR", str(open_dir / "lib"))
    closed = open_dir / "root-home"
    install = closed / "pginstall"
    shutil.copytree(private_postgres.bin_dir().parent / "bin", install / "bin", symlinks=True)
    closed.chmod(0o700)

    copy = private_postgres._programs_copy(install)

    assert copy.parent == open_dir / "lib"
    version = subprocess.run(
        ["runuser", "-u", "nobody", "--", str(copy / "bin" / "postgres"), "--version"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert version.returncode == 0 and "PostgreSQL" in version.stdout, version.stderr
    assert private_postgres._programs_copy(install) == copy  # made once


def test_a_stop_signal_that_comes_while_the_command_is_being_started_still_stops_it(open_dir, monkeypatch):
    """CI once waited 30 s on a `make run` told to stop: the SIGTERM came between the fork and
    the moment run() knew its child, so it was never passed on."""
    var = open_dir / "var"
    real_popen = subprocess.Popen
    started: list[subprocess.Popen] = []

    def popen_then_signalled(command, *args, **kwargs):
        child = real_popen(command, *args, **kwargs)
        if command == ["sleep", "60"]:  # the command, not the server's own programs
            started.append(child)
            os.kill(os.getpid(), signal.SIGTERM)  # handled before run() has the child in hand
        return child

    monkeypatch.setattr(private_postgres.subprocess, "Popen", popen_then_signalled)
    began = time.monotonic()
    try:
        assert private_postgres.run(["sleep", "60"], var) == 128 + signal.SIGTERM
    finally:
        for child in started:
            child.kill()
        private_postgres.stop(var)
    assert time.monotonic() - began < 30
    assert started and started[0].returncode == -signal.SIGTERM
    assert private_postgres.running_pid(var) is None
