# -*- test-case-name: tests.unit.test_fuzz_targets -*-
"""Fuzz the stored cache entry decoder (spec E1, E13; issue 9 item 2).

Input: the bytes a store (Redis, SQLite, ``cache import``) hands back.

Contract (core/entry.py, core/stored.py): stored bytes are untrusted input,
checked as strictly as a fetch; ``CacheEntry.decode`` returns a CacheEntry or
a StoredInvalid with a one-line reason, never an exception, and never
because one was caught inside it ("unreadable: ..." is its bug path);
``from_bytes`` agrees with it.  An entry it returns has a normalised domain
(G8, E13), an id of 1-32 letters and digits (A4), sane times
(``expires_at = fetched_at + max_age``, E1) and a policy that is what its
stored lines parse to (C18, C19); given a ``now`` more than the allowed
skew before its times it is refused; it encodes with ``to_bytes`` and
decodes back to an equal entry.
"""

from __future__ import annotations

import math
import re

from fuzz.contract import require, single_line
from postfix_mtasts.core.entry import CacheEntry, StoredInvalid
from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.policy import Policy, parse_policy
from postfix_mtasts.core.stored import MAX_CLOCK_SKEW_S

_ID = re.compile(r"[A-Za-z0-9]{1,32}\Z")


def one_input(data: bytes) -> None:
    entry = CacheEntry.decode(data)
    simple = CacheEntry.from_bytes(data)
    if isinstance(entry, StoredInvalid):
        require(simple is None, "from_bytes gave %r for %r", simple, entry)
        reason = entry.reason
        require(bool(reason) and single_line(reason), "reason %r", reason)
        require(not reason.startswith("unreadable:"), "caught inside: %r", reason)
        return
    require(isinstance(entry, CacheEntry), "decode gave %r", entry)
    require(simple == entry, "from_bytes gave %r, decode %r", simple, entry)
    check_entry(entry)
    latest = max(entry.fetched_at, entry.checked_at)
    require(CacheEntry.decode(data, latest) == entry, "refused at its own time")
    early = CacheEntry.decode(data, latest - MAX_CLOCK_SKEW_S - 1.0)
    require(isinstance(early, StoredInvalid), "%r accepted from the future", entry)
    again = CacheEntry.decode(entry.to_bytes())
    require(again == entry, "%r decodes back as %r", entry, again)


def check_entry(entry: CacheEntry) -> None:
    hop = classify_key(entry.domain.encode("utf-8", errors="surrogatepass"))
    require(
        hop.kind is KeyKind.DOMAIN and hop.domain == entry.domain,
        "domain %r is not a normalised name (E13)",
        entry.domain,
    )
    require(_ID.match(entry.policy_id) is not None, "id %r (A4)", entry.policy_id)
    times = (entry.fetched_at, entry.expires_at, entry.checked_at)
    require(all(map(math.isfinite, times)), "timestamps %r", times)
    require(entry.fault() is None, "%r: %s", entry, entry.fault())
    policy = entry.policy
    parsed = parse_policy("\n".join(policy.lines).encode("utf-8", "surrogatepass"))
    require(
        isinstance(parsed, Policy)
        and (parsed.mode, parsed.max_age, parsed.mx)
        == (policy.mode, policy.max_age, policy.mx),
        "stored policy %r is not what its lines say: %r (C18)",
        policy,
        parsed,
    )
