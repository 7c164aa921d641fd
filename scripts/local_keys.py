#!/usr/bin/env python3
"""Vault keys for a local real-mode ``make run`` without KAMEN_ENCRYPTION_KEYS /
KAMEN_BLIND_INDEX_KEY: generated once into the given file (0600, under var/, never committed)
in the format the embedded default uses, and printed as shell ``export`` lines for run.sh.

Production sets both variables in its environment (.env.example); losing this file makes the
secrets stored with it unreadable, so it is reused on every run and never overwritten.
"""

import shlex
import sys
from pathlib import Path


def load_or_create(path: Path) -> tuple[dict, bool]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from kamen.crypto import load_or_create_keys_file

    return load_or_create_keys_file(path)


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "var/keys.json")
    keys, created = load_or_create(path)
    verb = "Generated" if created else "Using"
    print(
        f"Note: KAMEN_ENCRYPTION_KEYS / KAMEN_BLIND_INDEX_KEY are not set. {verb} this machine's keys in "
        f"{path} (mode 0600, not committed; keep it with the database, or the stored card keys become "
        "unreadable). Production sets both in its environment (see .env.example).",
        file=sys.stderr,
    )
    print(f"export KAMEN_ENCRYPTION_KEYS={shlex.quote(keys['encryption_keys'])}")
    print(f"export KAMEN_BLIND_INDEX_KEY={shlex.quote(keys['blind_index_key'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
