# -*- test-case-name: tests.unit.test_fleet_key_wiring,tests.integration.test_daemon -*-
"""Wiring: open the stores a Config names (the SQLite file, Redis) behind
the memory cache, once, at start."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from postfix_mtasts.cache.store import (
    CacheUnavailableError,
    FleetCoordinator,
    PolicyStore,
)
from postfix_mtasts.core.config import Config, ConfigError
from postfix_mtasts.sharing import PolicySharing

__all__ = ["open_sharing"]

log = Logger()


async def open_sharing(config: Config, reactor: Any) -> PolicySharing | None:
    """The stores behind the memory cache; a store that cannot be opened is
    logged and left out (the daemon then runs without it).  A fleet key file
    that cannot be used stops the start (exit status 2)."""
    stores: list[PolicyStore] = []
    coordinator: FleetCoordinator | None = None
    fleet_keys: tuple[bytes, ...] = ()
    if config.redis.url and config.redis.fleet_key_file:
        from postfix_mtasts.cache.fleet_key import read_fleet_keys

        try:
            fleet_keys = read_fleet_keys(config.redis.fleet_key_file)
        except ConfigError as e:
            log.error("configuration error: {error}", error=str(e))
            raise SystemExit(2) from None
    if config.store.path:
        from postfix_mtasts.cache.sqlite import (
            SqliteStore,
            StoreOpenError,
            thread_runner,
        )

        run_in_thread, stop = thread_runner(reactor)
        sqlite = SqliteStore(
            config.store.path,
            reactor,
            run_in_thread=run_in_thread,
            max_entries=config.cache.max_entries,
        )
        try:
            await sqlite.open()
        except (StoreOpenError, CacheUnavailableError) as e:
            stop()
            log.error(
                "persistent store {path} unavailable, policies will not survive a "
                "restart: {error}",
                path=config.store.path,
                error=str(e),
            )
        else:
            reactor.addSystemEventTrigger("after", "shutdown", stop)
            stores.append(sqlite)
    if config.redis.url:
        from postfix_mtasts.cache.redis import make_redis

        redis_store, coordinator = make_redis(
            reactor,
            config.redis.url,
            prefix=config.redis.prefix,
            timeout_s=config.redis.timeout_s,
            fleet_keys=fleet_keys,
        )
        stores.append(redis_store)
    if not stores:
        return None
    return PolicySharing(
        stores, reactor, coordinator=coordinator, claim_ttl_s=config.redis.claim_ttl_s
    )
