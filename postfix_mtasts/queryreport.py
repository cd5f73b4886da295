# -*- test-case-name: tests.unit.test_cli -*-
"""What ``postfix-mtasts query`` reports, as plain data (its ``--json``
schema): the answer Postfix hears, the policy it came from, DANE precedence
and the MX facts (spec D13).  Made by the daemon for its ``query`` control
verb, and by the CLI for ``query --direct``."""

from __future__ import annotations

from typing import Any

from postfix_mtasts.core.answer import Answer, Status, render_value
from postfix_mtasts.core.dane import FactsRecord, dane_verdict
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.text import utc_timestamp

__all__ = ["describe", "describe_facts"]


def describe(
    key: str,
    domain: str,
    answer: Answer,
    entry: CacheEntry | None,
    now: float,
    facts: FactsRecord | None = None,
    *,
    dane: tuple[bool, str] | None = None,
    source: str = "fetch",
) -> dict[str, Any]:
    """The query report as plain data (the ``--json`` schema); ``dane``:
    whether the map has DANE precedence, and why; ``source``: where the
    policy came from ("fetch" for a discovery of the CLI's own, "cache" for
    the running daemon's)."""
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
            "source": source,
            "tolerated": list(entry.tolerated),
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
