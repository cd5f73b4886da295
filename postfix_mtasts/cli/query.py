# -*- test-case-name: tests.integration.test_daemon -*-
"""``postfix-mtasts query DOMAIN``: what Postfix hears for a key, and why.

By default the running daemon is asked through its control socket (the
``query`` verb): the answer comes through the front door Postfix's lookups
use, from the daemon's cache, so during an outage it says the cached
``secure`` that Postfix hears, not what a fresh discovery would find
(issue 11).  A daemon that cannot be reached is an error (exit status 3)
that suggests ``--direct``.

``--direct`` discovers the domain's policy with the daemon's own resolver and
decision code in this process, without the daemon or its store: what a
daemon with an empty cache would answer, whether the map has DANE precedence
and why (``dane = "auto"`` asks Postfix's postconf, as ``serve`` does at
start), and the MX facts that DANE precedence read (spec D13)."""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

from attrs import evolve
from twisted.internet import task
from twisted.internet.defer import Deferred

from postfix_mtasts.core.answer import Status
from postfix_mtasts.core.config import Config
from postfix_mtasts.core.dane_auto import dane_reason
from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.text import quote
from postfix_mtasts.postconf import settle_dane
from postfix_mtasts.queryreport import describe
from postfix_mtasts.service import make_lookup

__all__ = ["UNREACHABLE", "describe", "run_query"]

_EXIT = {Status.OK: 0, Status.NOTFOUND: 1, Status.TEMP: 2, Status.PERM: 2}
#: The exit status when the daemon cannot be asked.
UNREACHABLE = 3
TIMEOUT_S = 120.0  # a lookup of a domain due for discovery waits for it
MAX_ANSWER_BYTES = 4 * 1024 * 1024


def run_query(
    config: Config,
    key: str,
    *,
    map_name: str,
    as_json: bool,
    direct: bool = False,
    socket_path: str | None = None,
) -> int:
    if direct:
        return run_direct(config, key, map_name=map_name, as_json=as_json)
    path = socket_path or config.control.socket
    suggestion = (
        f"'postfix-mtasts query --direct {key}' runs a discovery of its own, "
        "without the daemon's cache"
    )
    if not path:
        print(
            "postfix-mtasts: no control socket configured ([control] socket) to "
            f"ask the daemon; {suggestion}",
            file=sys.stderr,
        )
        return UNREACHABLE
    try:
        reply = _ask(path, {"cmd": "query", "key": key, "map": map_name})
    except (OSError, ValueError) as e:
        print(
            f"postfix-mtasts: cannot ask the daemon at {path}: {e}; is it "
            f"running? {suggestion}",
            file=sys.stderr,
        )
        return UNREACHABLE
    if not reply.get("ok") or not isinstance(reply.get("report"), dict):
        print(f"postfix-mtasts: {reply.get('error')}", file=sys.stderr)
        return 2
    report: dict[str, Any] = reply["report"]
    _print(report, as_json)
    status = report.get("status")
    return next((code for s, code in _EXIT.items() if s.value == status), 2)


def _ask(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """The daemon's one-line JSON answer; OSError or ValueError when there
    is none."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT_S)
        s.connect(path)
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if len(data) > MAX_ANSWER_BYTES:
                raise ValueError("answer too long")
    answer = json.loads(data.split(b"\n", 1)[0]) if data else None
    if not isinstance(answer, dict):
        raise ValueError("no answer")
    return answer


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        for name, value in _text_rows(report):
            print(f"{name + ':':<9} {value}")


def run_direct(config: Config, key: str, *, map_name: str, as_json: bool) -> int:
    """``query --direct``: a discovery of this process's own."""
    profile = config.map_named(map_name)
    if profile is None:
        print(
            f"postfix-mtasts: no map named {quote(map_name)} in the configuration",
            file=sys.stderr,
        )
        return 2
    # A one-shot query waits for the whole discovery, not the lookup budget.
    patient = evolve(config, server=evolve(config.server, lookup_budget_s=120.0))

    async def main(reactor: Any) -> None:
        settled, postfix = await settle_dane(patient, reactor)
        effective = settled.map_named(map_name) or profile  # settling keeps maps
        dane = (effective.dane_on, dane_reason(profile, postfix))
        parts = make_lookup(settled, reactor)
        result = parts.front_door.lookup(map_name, key.encode())
        answer = await result if isinstance(result, Deferred) else result
        hop = classify_key(key.encode())
        domain = hop.domain if hop.kind is KeyKind.DOMAIN else ""
        entry = parts.admin.peek(domain) if domain else None
        facts = parts.admin.facts(domain) if domain else None
        report = describe(
            key, hop.domain, answer, entry, reactor.seconds(), facts, dane=dane
        )
        _print(report, as_json)
        raise SystemExit(_EXIT[answer.status])  # react exits with this code

    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))


def _text_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("key", report["key"]),
        ("domain", report["domain"] or "-"),
        ("reply", report["reply"]),
        ("reason", report["reason"] or "-"),
    ]
    precedence = report["dane_precedence"]
    if precedence is not None:
        state = "on" if precedence["on"] else "off"
        rows.append(("dane map", f"{state} ({precedence['why']})"))
    policy = report["policy"]
    if policy is not None:
        rows += [
            (
                "policy",
                f"id={policy['id']} mode={policy['mode']} max_age={policy['max_age']}",
            ),
            ("mx", ", ".join(policy["mx"]) or "-"),
            ("fetched", f"{policy['fetched_at']} (age {policy['age_s']:g} s)"),
            ("expires", policy["expires_at"]),
            ("source", policy["source"]),
        ]
        rows += [("tolerated", line) for line in policy.get("tolerated", ())]
    facts = report["mx_facts"]
    if facts is not None:
        if facts["mx"] is not None:
            secure = "DNSSEC-validated" if facts["mx_secure"] else "not validated"
            more = f" and {facts['more_mx']} more" if facts["more_mx"] else ""
            rows.append(
                ("mx hosts", f"{', '.join(facts['mx']) or '-'}{more} ({secure})")
            )
            tlsa = ", ".join(f"{h}={s}" for h, s in facts["tlsa"].items())
            rows.append(("tlsa", tlsa or "not asked"))
        rows.append(("dane", f"{facts['verdict']} (until {facts['due_at']})"))
        if facts["failure"]:
            rows.append(("mx error", facts["failure"]))
    return rows
