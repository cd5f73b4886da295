"""A dict-backed fake of our RedisCommands seam (style.md section 3: fakes over
mocks); the real server runs in tests/integration/test_redis_store.py."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IReactorTime

from postfix_mtasts.cache.redis import RedisStore


def as_reply(value: bytes | None) -> str | bytes | None:
    """A value as txredisapi hands it back: str when it is UTF-8."""
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


class FakeRedis:
    """Keys and values in a dict, without expiry; ``down = True`` fails every
    call as a lost connection would.  ``calls`` records (command, key)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.down = False
        self.calls: list[tuple[str, str]] = []

    def _reply(self, value: Any) -> Deferred[Any]:
        if self.down:
            return fail(ConnectionLost("fake redis is down"))
        return succeed(value)

    def get(self, key: str) -> Deferred[Any]:
        self.calls.append(("get", key))
        return self._reply(as_reply(self.values.get(key)))

    def set(
        self,
        key: str,
        value: bytes | str,
        *,
        pexpire: int,
        only_if_not_exists: bool = False,
    ) -> Deferred[Any]:
        self.calls.append(("set", key))
        if self.down:
            return self._reply(None)
        if only_if_not_exists and key in self.values:
            return self._reply(None)
        self.values[key] = value.encode() if isinstance(value, str) else value
        return self._reply("OK")

    def delete(self, keys: Sequence[str]) -> Deferred[Any]:
        self.calls.extend(("delete", key) for key in keys)
        if not self.down:
            for key in keys:
                self.values.pop(key, None)
        return self._reply(len(keys))

    def execute_command(self, *args: str | int) -> Deferred[Any]:
        """GETRANGE with start and end >= 0 only: "" for no key (as Redis)."""
        command, key, start, end = args
        assert command == "GETRANGE"
        assert isinstance(key, str)
        assert isinstance(start, int)
        assert isinstance(end, int)
        self.calls.append(("getrange", key))
        return self._reply(as_reply(self.values.get(key, b"")[start : end + 1]))

    def scan(self, cursor: int, pattern: str, count: int) -> Deferred[Any]:
        keys = [key for key in self.values if fnmatchcase(key, pattern)]
        return self._reply(["0", keys])

    def eval(
        self, script: str, keys: Sequence[str], args: Sequence[str]
    ) -> Deferred[Any]:
        return self._reply(1)

    def ping(self) -> Deferred[Any]:
        return self._reply("PONG")

    def disconnect(self) -> Deferred[Any]:
        return succeed(None)


def fake_store(
    redis: FakeRedis, clock: IReactorTime, fleet_keys: Sequence[bytes] = ()
) -> RedisStore:
    return RedisStore(lambda: succeed(redis), clock, fleet_keys=fleet_keys)
