"""Top functions of a cProfile file, each named with the daemon layer it is in.

Prints the top --top functions by cumulative and by own (self) time, then
own time summed per layer: DNS client, treq/HTTP, TLS/certificate checks,
policy parse, decision/store, logging, socketmap, reactor, other.  Made for
the file ``bench_cold.py --profile FILE`` writes.

    .venv/bin/python benchmarks/profile_layers.py FILE [--top 25]
"""

from __future__ import annotations

import argparse
import pstats
import re
from collections import Counter
from pathlib import Path

# (layer, substrings of "file:function"); the first match wins
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging", ("twisted/logger/", "/logging/", "journal", "sdmessage")),
    ("TLS/certificate checks", ("OpenSSL/", "service_identity", "/ssl.py")),
    ("TLS/certificate checks", ("protocols/tls.py", "cryptography", "_sslverify")),
    ("TLS/certificate checks", ("postfix_mtasts/https.py", "/https.py", "_openssl")),
    ("DNS client", ("dnsclient", "dnstransport", "resolver", "/dns/", "txt.py")),
    ("DNS client", ("mxfacts", "twisted/names", "/idna/", "hostnames")),
    ("treq/HTTP", ("treq/", "twisted/web/", "fetch.py", "httpbounds", "hyperlink")),
    ("treq/HTTP", ("policyagent", "hostendpoint")),
    ("policy parse", ("core/policy", "policyhost")),
    ("decision/store", ("core/decision", "core/answer", "core/entry", "/cache/")),
    ("decision/store", ("core/stored", "coordinator", "domains.py", "storage")),
    ("decision/store", ("refresh", "waiting", "json/")),
    ("socketmap", ("socketmap", "protocols.py", "frontdoor", "listeners")),
    ("socketmap", ("connections", "flowcontrol", "fairqueue", "basic.py")),
    ("reactor", ("twisted/internet/", "twisted/python/", "selectors", "epoll")),
)


def layer(file: str, func: str) -> str:
    name = f"/{file}:{func}"  # py-spy's files are relative
    for label, needles in LAYERS:
        if any(n in name for n in needles):
            return label
    return "other"


def short(file: str, line: int, func: str) -> str:
    for marker in ("site-packages/", "postfix_mtasts/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{file}:{line}({func})"


Row = tuple[float, float, int, str, int, str]
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def cprofile_rows(path: str) -> tuple[list[Row], float]:
    stats = pstats.Stats(path)
    rows = []
    for (file, line, func), (_cc, calls, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((cum, own, calls, file, line, func))
    return rows, stats.total_tt  # type: ignore[attr-defined]


def collapsed_rows(path: str, rate: float) -> tuple[list[Row], float]:
    """py-spy's raw format: ``frame;frame;... COUNT`` per line, outermost
    first; a function's cumulative time counts each stack once."""
    own: Counter[tuple[str, int, str]] = Counter()
    cum: Counter[tuple[str, int, str]] = Counter()
    total = 0
    for text in Path(path).read_text().splitlines():
        stack, _, count_text = text.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        keys = []
        for frame in stack.split(";"):
            m = FRAME.match(frame)
            if m:
                line = int(m["line"]) if m["line"] else 0
                keys.append((m["file"], line, m["func"]))
        if keys:
            own[keys[-1]] += count
            for key in set(keys):
                cum[key] += count
    rows = [(cum[k] / rate, own[k] / rate, cum[k], *k) for k in cum]
    return rows, total / rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file")
    p.add_argument("--top", type=int, default=25)
    p.add_argument(
        "--rate", type=float, default=250.0, help="py-spy samples/s (raw files)"
    )
    args = p.parse_args()
    try:
        rows, total = cprofile_rows(args.file)
        print(f"cProfile; total {total:.3f} s")
    except Exception:  # not marshalled pstats: py-spy's text
        rows, total = collapsed_rows(args.file, args.rate)
        print(f"py-spy samples; total {total:.3f} s sampled (calls = samples)")
    for title, index in (("cumulative", 0), ("self", 1)):
        print(f"\n-- top {args.top} by {title} time (s, calls, layer)")
        for row in sorted(rows, key=lambda r: r[index], reverse=True)[: args.top]:
            cum, own, calls, file, line, func = row
            print(
                f"{cum:8.3f} cum {own:8.3f} self {calls:9d}  "
                f"{layer(file, func):24s} {short(file, line, func)}"
            )
    per: Counter[str] = Counter()
    for _cum, own, _calls, file, _line, func in rows:
        per[layer(file, func)] += own
    print("\n-- self time per layer (s, share)")
    for label, own in per.most_common():
        print(f"{own:8.3f} {own / total:6.1%}  {label}")


if __name__ == "__main__":
    main()
