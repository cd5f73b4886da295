# -*- test-case-name: tests.unit.test_cli_status -*-
"""``postfix-mtasts status``: the running daemon's figures, asked over its
control socket (``[control] socket``), as text or ``--json``."""

from __future__ import annotations

import json
import socket
import sys
from typing import Any, TextIO

from postfix_mtasts.core.config import Config

__all__ = ["format_status", "run_status"]

TIMEOUT_S = 10.0
#: The status answer is a few kB; more is not a status answer.
MAX_ANSWER_BYTES = 1 << 20


def run_status(config: Config, args: Any, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    path = args.socket or config.control.socket
    if not path:
        print(
            "postfix-mtasts: no control socket configured ([control] socket)",
            file=sys.stderr,
        )
        return 2
    try:
        reply = _ask(path)
    except (OSError, ValueError) as e:
        print(
            f"postfix-mtasts: cannot reach the daemon at {path}: {e}", file=sys.stderr
        )
        return 2
    if not reply.get("ok") or not isinstance(reply.get("status"), dict):
        print(f"postfix-mtasts: {reply.get('error', 'no status')}", file=sys.stderr)
        return 1
    status: dict[str, Any] = reply["status"]
    if args.json:
        out.write(json.dumps(status, indent=2) + "\n")
    else:
        out.write(format_status(status))
    return 0


def _ask(path: str) -> dict[str, Any]:
    """The daemon's one-line answer to the status command."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT_S)
        s.connect(path)
        s.sendall(b'{"cmd": "status"}\n')
        chunks: list[bytes] = []
        size = 0
        while chunk := s.recv(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise ValueError(f"answer over {MAX_ANSWER_BYTES} bytes")
    answer = json.loads(b"".join(chunks).partition(b"\n")[0] or b"{}")
    if not isinstance(answer, dict):
        raise ValueError("the answer is not a JSON object")
    return answer


def _duration(seconds: float) -> str:
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    return " ".join([*parts, f"{hours}h", f"{minutes}m", f"{secs}s"])


def _pairs(counts: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"


def format_status(status: dict[str, Any]) -> str:
    """The status as a few lines for a person."""
    lookups, fetches = status["lookups"], status["fetches"]
    lines = [
        f"postfix-mtasts {status['version']}, up {_duration(status['uptime_s'])} "
        f"(since {status['started_at']})",
        f"policies cached: {_pairs(status['policies'])}",
        f"lookups: {lookups['total']} (cache hits {lookups['cache_hits']}, "
        f"misses {lookups['cache_misses']})",
    ]
    for map_name, answers in lookups["by_answer"].items():
        lines.append(f"  map {map_name}: {_pairs(answers)}")
    failed = {k: v for k, v in fetches["by_result"].items() if k != "ok"}
    lines.append(
        f"fetches: {fetches['ok']} ok, {fetches['failed']} failed"
        + (f" ({_pairs(failed)})" if failed else "")
    )
    lines.append(f"refresh backlog: {status['refresh']['pending']}")
    stores = [
        f"{s['kind']} {'up' if s['up'] else 'DOWN'} ({s['errors']} errors)"
        for s in status["stores"]
    ]
    lines.append("stores: " + (", ".join(stores) or "none (memory only)"))
    lines.append("listeners:")
    lines.extend(
        f"  {x['endpoint']} {x['protocol']}: {x['connections']} connections"
        for x in status["listeners"]
    )
    errors = status["last_errors"]
    lines.append("last errors:" + ("" if errors else " none"))
    lines.extend(f"  {e['at']} {e['level']}: {e['text']}" for e in errors)
    return "\n".join(lines) + "\n"
