# -*- test-case-name: tests.unit.test_redis_url -*-
"""The ``[redis] url``: where the fleet store is, read once at config load.

Pure.  Two forms: ``redis://[:password@]host[:port][/db]`` and
``unix:///path[?db=N]``.  :func:`parse_redis_url` rejects anything else
(``rediss:``, a port that is not one, a database that is not a number, a
user name the connection would ignore) with a :class:`RedisUrlError`, so
that a typo stops the start with one line instead of a traceback, and
:func:`postfix_mtasts.cache.redis.make_redis` connects to what it returns.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qs, unquote, urlsplit

from attrs import frozen

from postfix_mtasts.core.value import Value

__all__ = ["MAX_DB", "RedisAddress", "RedisUrlError", "parse_redis_url"]

#: Redis numbers its databases from 0; the server's own limit is its
#: ``databases`` setting (16 by default), this only bounds the number.
MAX_DB = 1_000_000
_DB = re.compile(r"[0-9]{1,7}")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_FORMS = "redis://[:password@]host[:port][/db] or unix:///path[?db=N]"


class RedisUrlError(ValueError):
    """The URL cannot be used; the message says which part."""


@frozen(repr=False)
class RedisAddress(Value):
    """A TCP (``host``, ``port``) or unix (``path``; host "", port 0) Redis
    server, the database to select and the password to send (None: no
    AUTH)."""

    host: str
    port: int
    path: str
    db: int
    password: str | None
    #: How logs name it: ``host:port`` or the socket path.
    name: str


def parse_redis_url(url: str) -> RedisAddress:
    """Read ``url`` (see the module); :class:`RedisUrlError` if unusable."""
    try:
        u = urlsplit(url)
        port = u.port  # ValueError when not a number from 0 to 65535
    except ValueError as e:
        raise RedisUrlError(f"{e}; expected {_FORMS}") from None
    if u.fragment:
        raise RedisUrlError(f"no #fragment allowed; expected {_FORMS}")
    if u.username:
        raise RedisUrlError("only a password may be given (redis://:password@host)")
    password = unquote(u.password) if u.password else None
    if u.scheme == "redis" and url.startswith("redis://"):
        if u.query:
            raise RedisUrlError(
                f"no ?query allowed in a redis:// URL; expected {_FORMS}"
            )
        host = u.hostname or "localhost"
        if not _is_host(host):
            raise RedisUrlError(f"not a host name or IP address: {host!r}")
        if port == 0:
            raise RedisUrlError("port: expected a number from 1 to 65535")
        db_text = u.path.removeprefix("/")
        db = _db(db_text or "0")
        port = port or 6379
        return RedisAddress(host, port, "", db, password, f"{host}:{port}")
    if u.scheme == "unix" and url.startswith("unix:///") and len(u.path) > 1:
        query = parse_qs(u.query, keep_blank_values=True)
        if set(query) - {"db"} or len(query.get("db", ["0"])) != 1:
            raise RedisUrlError("a unix:// URL takes one ?db=N and nothing else")
        db = _db(query.get("db", ["0"])[0])
        return RedisAddress("", 0, u.path, db, password, u.path)
    raise RedisUrlError(f"expected {_FORMS}")


def _db(text: str) -> int:
    if not _DB.fullmatch(text) or int(text) > MAX_DB:
        raise RedisUrlError(f"the database must be a number: {text!r}")
    return int(text)


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOST.fullmatch(host) is not None
    return True
