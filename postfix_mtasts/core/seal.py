# -*- test-case-name: tests.unit.test_seal -*-
"""A fleet key's MAC on the values the fleet shares through Redis (issue 9).

Pure.  Without a fleet key, whoever can write to Redis decides every host's
policies; with one, a value counts only if it carries
``mac1:<hex HMAC-SHA256>:<payload>``, the MAC taken with the key over the
Redis key's length, the Redis key and the payload (so that a value cannot be
moved to another domain's key).  The first key seals; every key opens, so a
new key can be rolled out beside the old one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["MAC_PREFIX", "MIN_KEY_BYTES", "SEALED_OVERHEAD", "seal", "unseal"]

MAC_PREFIX = b"mac1:"
MIN_KEY_BYTES = 32
_HEX_LENGTH = 2 * hashlib.sha256().digest_size
#: What sealing adds to a payload.
SEALED_OVERHEAD = len(MAC_PREFIX) + _HEX_LENGTH + 1


def _mac(key: bytes, name: str, payload: bytes) -> bytes:
    label = name.encode("utf-8", "surrogateescape")
    message = len(label).to_bytes(4, "big") + label + payload
    return hmac.new(key, message, hashlib.sha256).hexdigest().encode("ascii")


def seal(key: bytes, name: str, payload: bytes) -> bytes:
    """``payload`` as stored under the Redis key ``name``, with its MAC."""
    return MAC_PREFIX + _mac(key, name, payload) + b":" + payload


def unseal(keys: Sequence[bytes], name: str, value: bytes) -> bytes | str:
    """The payload of a value sealed with one of ``keys`` for ``name``, or
    why not.  With no keys, a plain value is its own payload and a sealed
    one is refused (this host cannot check it)."""
    sealed = value.startswith(MAC_PREFIX)
    if not keys:
        return "sealed with a fleet key, none configured" if sealed else value
    if not sealed:
        return "no fleet key MAC"
    mac = value[len(MAC_PREFIX) : len(MAC_PREFIX) + _HEX_LENGTH]
    if value[len(MAC_PREFIX) + _HEX_LENGTH : SEALED_OVERHEAD] != b":":
        return "malformed fleet key MAC"
    payload = value[SEALED_OVERHEAD:]
    for key in keys:
        if hmac.compare_digest(mac, _mac(key, name, payload)):
            return payload
    return "fleet key MAC does not match"
