# -*- test-case-name: tests.unit.test_dane -*-
"""DANE precedence: what a domain's MX facts say about DANE (spec D13, L9-L12).

Pure.  A ``secure`` answer makes Postfix skip DANE for the destination
(L9); RFC 8461 §2 forbids MTA-STS to override DANE.  So before an STS
answer, the daemon learns from its validating resolver whether the
domain's MX RRset is DNSSEC-validated (the AD bit) and which MX hosts have
validated ``_25._tcp.<mx>`` TLSA records.  :class:`MxFacts` holds what DNS
said, already bounded and checked (the DNS side is
:mod:`postfix_mtasts.mxfacts`); :func:`dane_verdict` says which answer that
calls for: Postfix's own DANE when some host has TLSA (``dane`` /
``dane-only``, L11), the STS policy otherwise.

Decisions taken here:

- Only the first :data:`MAX_MX_HOSTS` distinct MX hosts by preference (ties
  by name) are kept and asked for TLSA; ``more_hosts`` counts the rest, and
  they count as hosts without TLSA (so at most ``dane``, never
  ``dane-only``).  Postfix itself tries 5 addresses by default.
- An MX name that is not a valid host name (not LDH, an IP, ``localhost``)
  is skipped, as Postfix skips it.  A null MX (RFC 7505) or a domain that
  does not exist has no hosts: no DANE.  No MX record (NODATA) makes the
  domain itself the implicit MX (RFC 5321 §5.1).
- A TLSA lookup that fails (SERVFAIL: bogus; or no answer) counts as "this
  host has TLSA": Postfix's DANE then looks for itself and refuses a host it
  cannot validate, which is right; a DANE failure must not be overridden.
- TLSA that is not DNSSEC-validated is ignored (Postfix ignores it too).
- Facts live ``min`` of the RRsets' TTLs, clamped to
  :data:`MIN_FACTS_TTL_S` .. the recheck interval.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from attrs import frozen

from postfix_mtasts.core.mx import mx_matches
from postfix_mtasts.core.nexthop import MAX_NAME_CHARS, KeyKind, classify_key
from postfix_mtasts.core.policy import MxPattern
from postfix_mtasts.core.value import Value

__all__ = [
    "MAX_MX_HOSTS",
    "MIN_FACTS_TTL_S",
    "NOT_GATHERED",
    "TLSA_PREFIX",
    "FactsFailed",
    "FactsRecord",
    "MxFacts",
    "TlsaState",
    "Verdict",
    "clamp_ttl",
    "dane_verdict",
    "exact_match_list",
    "mx_hosts",
    "record_after",
    "tlsa_name",
    "valid_host",
]

#: MX hosts kept from one answer, and asked for TLSA.
MAX_MX_HOSTS = 10
#: Facts are asked again at least this long after they were gathered.
MIN_FACTS_TTL_S = 60.0
#: RFC 7672 §3: TLSA records of an SMTP server on port 25.
TLSA_PREFIX = "_25._tcp."


class TlsaState(enum.Enum):
    """What the ``_25._tcp.<mx>`` TLSA lookup of one MX host found."""

    NONE = "none"  # no TLSA, or TLSA that is not DNSSEC-validated
    VALIDATED = "validated"  # a TLSA RRset with the AD bit
    FAILED = "failed"  # SERVFAIL (bogus) or no answer: Postfix's DANE decides

    @property
    def counts_as_tlsa(self) -> bool:
        return self is not TlsaState.NONE


class Verdict(enum.Enum):
    """Which answer the facts call for."""

    STS = "sts"  # no DANE here: the STS policy applies as it is
    DANE = "dane"  # some MX hosts have TLSA: Postfix's DANE, opportunistic
    DANE_ONLY = "dane-only"  # every MX host has TLSA: Postfix's DANE, mandatory
    UNKNOWN = "unknown"  # nothing known (MX lookup failed or not done yet)


@frozen(repr=False)
class MxFacts(Value):
    """What DNS said of a domain's MX hosts, checked and bounded.

    ``hosts`` are valid lower-case host names, best preference first, at
    most :data:`MAX_MX_HOSTS`; ``more_hosts`` counts the MX hosts left out.
    ``secure``: the MX RRset was DNSSEC-validated.  ``tlsa`` has one state
    per host when ``secure`` (TLSA is not asked otherwise: without a
    validated MX RRset there is no DANE), else it is empty.  ``implicit``:
    the domain has no MX record and is its own MX.  ``ttl_s`` is the
    clamped lifetime, ``checked_at`` when DNS was asked.
    """

    hosts: tuple[str, ...]
    secure: bool
    tlsa: tuple[TlsaState, ...]
    checked_at: float
    ttl_s: float
    more_hosts: int = 0
    implicit: bool = False

    @property
    def expires_at(self) -> float:
        return self.checked_at + self.ttl_s

    def with_tlsa(self) -> int:
        """How many hosts count as having TLSA."""
        return sum(1 for state in self.tlsa if state.counts_as_tlsa)


@frozen(repr=False)
class FactsFailed(Value):
    """The MX lookup failed (SERVFAIL: bogus or broken; REFUSED; no answer)."""

    reason: str


@frozen(repr=False)
class FactsRecord(Value):
    """A domain's facts as the daemon keeps them: the last good ``facts``
    (None: never gathered successfully), why the latest gathering failed
    (``failure``, "" when it did not), and when to gather again."""

    facts: MxFacts | None
    due_at: float
    failure: str = ""

    @classmethod
    def gathered(cls, facts: MxFacts) -> FactsRecord:
        return cls(facts, facts.expires_at)

    def failed(self, reason: str, retry_at: float) -> FactsRecord:
        """This record after a failed gathering: the last good facts stay."""
        return FactsRecord(self.facts, retry_at, reason)

    def due(self, now: float) -> bool:
        return now >= self.due_at


#: What a daemon that gathers facts knows of a domain it has not asked yet.
NOT_GATHERED = FactsRecord(None, 0.0, "MX facts not gathered yet")


def record_after(
    old: FactsRecord | None, outcome: MxFacts | FactsFailed, now: float, retry_s: float
) -> FactsRecord:
    """A domain's record after one gathering: new facts replace the old; a
    failure keeps the last good facts and is tried again after ``retry_s``."""
    if isinstance(outcome, MxFacts):
        return FactsRecord.gathered(outcome)
    return (old or NOT_GATHERED).failed(outcome.reason, now + retry_s)


def dane_verdict(record: FactsRecord | None) -> Verdict:
    """The answer a domain's facts call for (RFC 8461 §2, spec D13, L9-L12).

    No facts at all (never gathered, or every gathering failed): UNKNOWN.
    The last good facts stay in force after a failure: a bogus answer can
    neither strip DANE that was seen validated nor invent it.
    """
    facts = record.facts if record is not None else None
    if facts is None:
        return Verdict.UNKNOWN
    if not facts.secure or not facts.hosts:
        return Verdict.STS
    with_tlsa = facts.with_tlsa()
    if with_tlsa == 0:
        return Verdict.STS
    if with_tlsa == len(facts.hosts) and facts.more_hosts == 0:
        return Verdict.DANE_ONLY
    return Verdict.DANE


def mx_hosts(
    records: Iterable[tuple[int, str]], limit: int = MAX_MX_HOSTS
) -> tuple[tuple[str, ...], int]:
    """The MX hosts to use from ``(preference, exchange)`` records, and how
    many valid ones were left out past ``limit``.

    Exchanges are names as DNS gave them (no trailing dot; ``""`` for the
    root, a null MX).  Invalid names are skipped; duplicates keep their
    best preference; order is preference, then name.  A null MX yields no
    host (RFC 7505).
    """
    best: dict[str, int] = {}
    for preference, exchange in records:
        host = valid_host(exchange)
        if host is not None and preference < best.get(host, preference + 1):
            best[host] = preference
    ordered = sorted(best, key=lambda host: (best[host], host))
    return tuple(ordered[:limit]), max(len(ordered) - limit, 0)


def valid_host(name: str) -> str | None:
    """``name`` lower-cased if it is a host name mail may go to, else None
    (LDH labels, at least two, no IP, not ``localhost``: spec F8)."""
    if not name or len(name) > MAX_NAME_CHARS:
        return None
    hop = classify_key(name.encode("ascii", "replace"))
    if hop.kind in (KeyKind.DOMAIN, KeyKind.UNDISCOVERABLE):
        return hop.domain
    return None


def tlsa_name(host: str) -> str | None:
    """``_25._tcp.<host>``, or None when that is too long to be a DNS name
    (then no TLSA can exist for it)."""
    name = TLSA_PREFIX + host
    return name if len(name) <= MAX_NAME_CHARS else None


def clamp_ttl(ttl: float | None, ceiling: float) -> float:
    """A facts lifetime: ``ttl`` within :data:`MIN_FACTS_TTL_S` ..
    ``ceiling`` (None, as for a failed lookup, is the minimum)."""
    if ttl is None:
        return MIN_FACTS_TTL_S
    return max(MIN_FACTS_TTL_S, min(float(ttl), max(ceiling, MIN_FACTS_TTL_S)))


def exact_match_list(
    hosts: Iterable[str], patterns: Iterable[MxPattern]
) -> tuple[str, ...]:
    """The MX ``hosts`` that some policy pattern allows (RFC 8461 §4.1: a
    ``*.`` matches exactly one left-most label), in host order: a ``match=``
    list of exact names, for Postfix releases that do not enforce the
    one-label rule themselves (spec L7, G22, G23)."""
    patterns = tuple(patterns)
    return tuple(host for host in hosts if any(mx_matches(host, p) for p in patterns))
