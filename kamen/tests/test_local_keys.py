"""scripts/local_keys.py: a local real-mode make run without vault keys gets this machine's
keys, generated once, private, with a message instead of a traceback."""

import base64
import stat
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local_keys.py"


def _run(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, str(path)], capture_output=True, text=True, check=True)


def test_keys_are_generated_once_private_and_exported(tmp_path):
    path = tmp_path / "var" / "keys.json"

    first, second = _run(path), _run(path)

    assert "Generated" in first.stderr and "Using" in second.stderr
    assert first.stdout == second.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    exports = dict(line.removeprefix("export ").split("=", 1) for line in first.stdout.splitlines())
    kid, _, key = exports["KAMEN_ENCRYPTION_KEYS"].strip("'").partition(":")
    assert kid == "e1" and len(base64.b64decode(key)) == 32
    assert len(base64.b64decode(exports["KAMEN_BLIND_INDEX_KEY"].strip("'"))) == 32
