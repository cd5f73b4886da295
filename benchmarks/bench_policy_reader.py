"""How long reading one policy body takes: real shapes and the worst a
hostile policy host (or a Redis writer: stored entries are read again on
every store read) can send within the 64 KiB limit.  The reader runs on the
reactor thread, so its time is time no lookup is answered.

    .venv/bin/python benchmarks/bench_policy_reader.py [--before REVISION]

With ``--before`` (e.g. 05fef18, the strict reader) that revision's reader
is timed on the same bodies, loaded from git like
scripts/compare-policy-readers does.  Best of 5 runs of each body.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postfix_mtasts.core.policy import parse_policy  # noqa: E402
from postfix_mtasts.core.policyhost import MAX_POLICY_BYTES  # noqa: E402

HEAD = b"version: STSv1\nmode: enforce\nmax_age: 604800\nmx: mx.example.com\n"


def filled(line: str) -> bytes:
    """HEAD and then ``line`` (with {} for a counter) up to 64 KiB."""
    body, n = HEAD, 0
    while len(body) + len(line.format(n).encode()) <= MAX_POLICY_BYTES:
        body += line.format(n).encode()
        n += 1
    return body


BODIES: dict[str, bytes] = {
    "rfc example": (
        b"version: STSv1\nmode: enforce\nmx: mail.example.com\n"
        b"mx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n"
    ),
    "same, CRLF": (
        b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
        b"mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n"
    ),
    "tolerated": (
        b"  version: STSv1\n  mode: enforce\n\n  mx: m\xc3\xbcnchen.example\n"
        b"  mx: 192.0.2.1\n  max_age: 604800 # a week\nSee the wiki.\n"
    ),
    "64 KiB of valid mx": filled("mx: mx{}.example.com\n"),
    "64 KiB of U-label mx": filled("mx: \u00fc{}.example\n"),
    "64 KiB of A-label mx": filled("mx: xn--mnchen-{}-9db.example\n"),
    "64 KiB of IP mx": filled("mx: 192.0.{}.1\n"),
    "64 KiB of stray lines": filled("x {}\n"),
    "64 KiB of empty extensions": filled("x-{}:\n"),
}


def load_before(revision: str) -> Callable[[bytes], Any]:
    sys.path.insert(0, str(ROOT / "scripts"))
    loader = importlib.machinery.SourceFileLoader(
        "compare_policy_readers", str(ROOT / "scripts" / "compare-policy-readers")
    )
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    reader: Callable[[bytes], Any] = module.load_reader(revision)
    return reader


def best_ms(reader: Callable[[bytes], Any], body: bytes) -> float:
    number = max(1, int(2000 / max(1, len(body) // 64)))
    return (
        min(timeit.repeat(lambda: reader(body), number=number, repeat=5)) / number * 1e3
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="REVISION", help="also time this reader")
    args = parser.parse_args()
    before = load_before(args.before) if args.before else None
    print(
        f"{'body':28} {'bytes':>6} {'now ms':>9}"
        + (f" {'before ms':>10}" if before else "")
    )
    for name, body in BODIES.items():
        row = f"{name:28} {len(body):6} {best_ms(parse_policy, body):9.3f}"
        if before is not None:
            row += f" {best_ms(before, body):10.3f}"
        print(row)


if __name__ == "__main__":
    main()
