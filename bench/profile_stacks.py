"""Where the CPU of a sampled process goes: ``python -m bench.profile_stacks DIR [prefix]`` reads
the collapsed stacks py-spy wrote (``BENCH_HTTP_PROFILE=DIR``, see bench/http_storm.py) and prints,
per role (web, celery), the share of samples by request path, by layer (middleware, ORM,
templates, …) and the functions with the most inclusive and own samples.

A sample counts once per function however deep the recursion; with py-spy's ``--gil`` only the
thread holding the GIL is sampled, so shares are of Python CPU, not of waiting.
"""

import collections
import re
import sys
from pathlib import Path

# Own time attributed to the first matching layer, by the file of the leaf frame.
LAYERS = [
    ("database driver (psycopg, the call itself)", r"django/db/backends/|psycopg"),
    ("ORM: query compiling", r"django/db/models/(sql/|expressions|lookups|fields/related_lookups|functions)"),
    ("ORM: model instances and querysets", r"django/db/models/"),
    ("templates", r"django/template/|django/templatetags/"),
    ("translation", r"django/utils/translation|gettext"),
    ("sessions", r"django/contrib/sessions/"),
    ("signing and crypto", r"django/core/signing|hmac|hashlib|cryptography|kamen/crypto"),
    ("cache (Redis)", r"django/core/cache|redis/|kombu/|celery/"),
    ("url resolving", r"django/urls/"),
    ("HTTP request/response", r"django/http/|django/core/handlers/|gunicorn/|wsgiref|email/|urllib"),
    ("middleware (Django, whitenoise)", r"django/middleware/|whitenoise/|django/contrib/messages|django/contrib/auth"),
    ("logging", r"logging/"),
    ("Kamen code", r"(kamen|catalog|orders|riskcontrol|distribution|commissions)/"),
]
LINE = re.compile(r":\d+\)$")
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):\d+\)$")


def _read(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        frames, _space, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def _path_of(frames: list[str]) -> str:
    """The view the sample was serving, or what else the thread was doing."""
    for frame in frames:
        match = FRAME.match(frame)
        if match and match.group("file").startswith(("orders/views", "catalog/views", "kamen/views")):
            return match.group("function")
        if match and "/tasks.py" in match.group("file") and match.group("function").endswith("_task"):
            return match.group("function")
    for frame in frames:
        if "handle_request" in frame:
            return "(request, outside the view)"
    return "(other)"


def report(directory: Path, prefix: str = "") -> None:
    by_role: dict[str, list[tuple[list[str], int]]] = collections.defaultdict(list)
    for path in sorted(directory.glob(f"{prefix}*.txt")):
        role = path.stem.split("-")[1]
        by_role[role].extend(_read(path))
    for role, stacks in by_role.items():
        total = sum(count for _frames, count in stacks) or 1
        inclusive: collections.Counter = collections.Counter()
        own: collections.Counter = collections.Counter()
        layers: collections.Counter = collections.Counter()
        paths: collections.Counter = collections.Counter()
        for frames, count in stacks:
            for frame in {LINE.sub(")", frame) for frame in frames}:  # a function, whatever its line
                inclusive[frame] += count
            own[frames[-1]] += count
            paths[_path_of(frames)] += count
            match = FRAME.match(frames[-1])
            leaf_file = match.group("file") if match else frames[-1]
            layer = next((name for name, pattern in LAYERS if re.search(pattern, leaf_file)), "other (stdlib, C)")
            layers[layer] += count
        print(f"\n== {role}: {total} samples ==")
        print("by path:")
        for name, count in paths.most_common(12):
            print(f"  {count * 100 / total:5.1f}%  {name}")
        print("own time by layer:")
        for name, count in layers.most_common():
            print(f"  {count * 100 / total:5.1f}%  {name}")
        print("inclusive, top functions:")
        for name, count in inclusive.most_common(45):
            print(f"  {count * 100 / total:5.1f}%  {name[:150]}")
        print("own, top functions:")
        for name, count in own.most_common(25):
            print(f"  {count * 100 / total:5.1f}%  {name[:150]}")


if __name__ == "__main__":
    report(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "")
