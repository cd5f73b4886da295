# -*- test-case-name: tests.integration.test_daemon -*-
"""``postfix-mtasts query DOMAIN``: discover one domain's policy with the
daemon's own resolver and decision code, and say what Postfix would hear,
whether the map has DANE precedence and why (``dane = "auto"`` asks
Postfix's postconf, as ``serve`` does at start), and the MX facts that DANE
precedence read (spec D13)."""

from __future__ import annotations

import json
import sys
from typing import Any

from attrs import evolve
from twisted.internet import task
from twisted.internet.defer import Deferred

from postfix_mtasts.core.answer import Answer, Status, render_value
from postfix_mtasts.core.config import Config
from postfix_mtasts.core.dane import FactsRecord, dane_verdict
from postfix_mtasts.core.dane_auto import dane_reason
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.text import quote, utc_timestamp
from postfix_mtasts.postconf import settle_dane
from postfix_mtasts.service import make_lookup

__all__ = ["describe", "run_query"]

_EXIT = {Status.OK: 0, Status.NOTFOUND: 1, Status.TEMP: 2, Status.PERM: 2}


def run_query(config: Config, key: str, *, map_name: str, as_json: bool) -> int:
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
        if as_json:
            print(json.dumps(report, indent=2, sort_keys=True))
        else:
            for name, value in _text_rows(report):
                print(f"{name + ':':<9} {value}")
        raise SystemExit(_EXIT[answer.status])  # react exits with this code

    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))


def describe(
    key: str,
    domain: str,
    answer: Answer,
    entry: CacheEntry | None,
    now: float,
    facts: FactsRecord | None = None,
    *,
    dane: tuple[bool, str] | None = None,
) -> dict[str, Any]:
    """The query report as plain data (the ``--json`` schema); ``dane``:
    whether the map has DANE precedence, and why."""
    reply = answer.status.value
    if answer.value is not None:
        reply += " " + render_value(answer.value)
    elif answer.status is not Status.NOTFOUND:
        reply += " " + answer.reason
    policy = None
    if entry is not None:
        policy = {
            "id": entry.policy_id,
            "mode": entry.policy.mode.value,
            "max_age": entry.policy.max_age,
            "mx": [p.text for p in entry.policy.mx],
            "fetched_at": utc_timestamp(entry.fetched_at),
            "expires_at": utc_timestamp(entry.expires_at),
            "age_s": round(now - entry.fetched_at, 3),
            "source": "fetch",
        }
    return {
        "key": key,
        "domain": domain or None,
        "status": answer.status.value,
        "reply": reply,
        "reason": answer.reason,
        "policy": policy,
        "dane_precedence": None if dane is None else {"on": dane[0], "why": dane[1]},
        "mx_facts": describe_facts(facts),
    }


def describe_facts(record: FactsRecord | None) -> dict[str, Any] | None:
    """The MX facts as plain data: MX hosts, whether the MX RRset was
    DNSSEC-validated, the TLSA state per host (asked only when it was), the
    verdict, when they were gathered and until when they hold."""
    if record is None:
        return None
    facts = record.facts
    described: dict[str, Any] = {
        "verdict": dane_verdict(record).value,
        "failure": record.failure or None,
        "due_at": utc_timestamp(record.due_at) if record.due_at else None,
        "mx": None,
    }
    if facts is not None:
        described.update(
            mx=list(facts.hosts),
            more_mx=facts.more_hosts,
            implicit_mx=facts.implicit,
            mx_secure=facts.secure,
            tlsa={
                host: state.value
                for host, state in zip(facts.hosts, facts.tlsa, strict=False)
            },
            checked_at=utc_timestamp(facts.checked_at),
            expires_at=utc_timestamp(facts.expires_at),
        )
    return described


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
