#!/usr/bin/env bash
# Fail early, and clearly, when the interpreter is not Python 3.11.
set -euo pipefail
python="${1:-}"
if [[ -z "$python" ]]; then
    echo "Kamen needs Python 3.11: install it (python3.11) and run make again." >&2
    exit 1
fi
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$version" != "3.11" ]]; then
    echo "Kamen needs Python 3.11, found $version at $python. Run: make run PYTHON=/path/to/python3.11" >&2
    exit 1
fi
