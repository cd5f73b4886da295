# -*- test-case-name: tests.unit.test_fuzz_targets -*-
"""Fuzz the stored cache entry decoder (spec E1, E13; issue 9 item 2).

Input: the bytes a store (Redis, SQLite, ``cache import``) hands back.

Contract (core/entry.py): stored bytes are untrusted input, validated as
strictly as a fetch; ``CacheEntry.from_bytes`` returns a CacheEntry or None
and never raises.  An entry it returns has a normalised domain (G8, E13),
an id of 1-32 letters and digits (A4), finite timestamps, and a policy that
is what its stored lines parse to (C18, C19); it encodes with ``to_bytes``
and decodes back to an equal entry.
"""

from __future__ import annotations

import math
import re

from fuzz.contract import require
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.policy import Policy, parse_policy

_ID = re.compile(r"[A-Za-z0-9]{1,32}\Z")


def one_input(data: bytes) -> None:
    entry = CacheEntry.from_bytes(data)
    if entry is None:
        return
    require(isinstance(entry, CacheEntry), f"from_bytes gave {entry!r}")
    check_entry(entry)
    again = CacheEntry.from_bytes(entry.to_bytes())
    require(again == entry, f"{entry!r} decodes back as {again!r}")


def check_entry(entry: CacheEntry) -> None:
    hop = classify_key(entry.domain.encode("utf-8", errors="surrogatepass"))
    require(
        hop.kind is KeyKind.DOMAIN and hop.domain == entry.domain,
        f"domain {entry.domain!r} is not a normalised name (E13)",
    )
    require(_ID.match(entry.policy_id) is not None, f"id {entry.policy_id!r} (A4)")
    times = (entry.fetched_at, entry.expires_at, entry.checked_at)
    require(all(map(math.isfinite, times)), f"timestamps {times!r}")
    policy = entry.policy
    parsed = parse_policy("\n".join(policy.lines).encode("utf-8", "surrogatepass"))
    require(
        isinstance(parsed, Policy)
        and (parsed.mode, parsed.max_age, parsed.mx)
        == (policy.mode, policy.max_age, policy.mx),
        f"stored policy {policy!r} is not what its lines say: {parsed!r} (C18)",
    )
