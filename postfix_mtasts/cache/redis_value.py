# -*- test-case-name: tests.unit.test_redis_values -*-
"""What a Redis value of the fleet store holds: an entry, sealed with the
fleet key when there is one (core.seal).

A value is untrusted input: :func:`decode_value` checks it as strictly as a
fetch (CacheEntry.decode), for its key and from the reader's clock, and
names the reason for a refusal; :func:`encode_value` is its inverse.
"""

from __future__ import annotations

from collections.abc import Sequence

from postfix_mtasts.core.entry import CacheEntry, StoredInvalid
from postfix_mtasts.core.seal import SEALED_OVERHEAD, seal, unseal
from postfix_mtasts.core.stored import MAX_STORED_BYTES
from postfix_mtasts.core.text import quote

__all__ = ["decode_value", "encode_value"]


def decode_value(
    raw: object, key: str, domain: str, fleet_keys: Sequence[bytes], now: float
) -> CacheEntry | StoredInvalid:
    """The entry for ``domain`` in ``raw``, the value of ``key``."""
    if isinstance(raw, str):  # txredisapi decodes what is UTF-8
        raw = raw.encode("utf-8", "surrogatepass")
    if not isinstance(raw, bytes):
        return StoredInvalid(f"a {type(raw).__name__}, not a string")
    if len(raw) > MAX_STORED_BYTES + SEALED_OVERHEAD:
        return StoredInvalid(f"{len(raw)} bytes, too long for an entry")
    payload = unseal(fleet_keys, key, raw)
    if isinstance(payload, str):
        return StoredInvalid(payload)
    entry = CacheEntry.decode(payload, now)
    if isinstance(entry, CacheEntry) and entry.domain != domain:
        return StoredInvalid(f"an entry for {quote(entry.domain)}")
    return entry


def encode_value(entry: CacheEntry, key: str, fleet_keys: Sequence[bytes]) -> bytes:
    """The value of ``key`` for ``entry``; ValueError if it cannot be one."""
    if why := entry.fault():  # every reader would refuse it
        raise ValueError(why)
    payload = entry.to_bytes()
    return seal(fleet_keys[0], key, payload) if fleet_keys else payload
