# -*- test-case-name: tests.unit.test_config -*-
"""Turn the TOML configuration into a frozen :class:`Config`.

Pure except :func:`load`, which reads the file.  Unknown keys and bad values
raise :class:`ConfigError` whose message starts with the key path at fault
(``maps.postfix.dns_failure: ...``, ``listener[1].protocol: ...``).  Each
section's defaults and checks sit on its attrs fields (read by
:mod:`postfix_mtasts.core.config_toml`), so ``Config() == parse_config("")``;
``conf/postfix-mtasts.toml`` documents every key.
"""

from __future__ import annotations

import re
import tomllib
from typing import Literal, get_args

from attrs import field, frozen

from postfix_mtasts.core.config_dns import DnsConfig, DnssecProbe, parse_dns
from postfix_mtasts.core.config_listeners import (
    ListenerConfig,
    ListenerProtocol,
    parse_listeners,
)
from postfix_mtasts.core.config_metrics import MetricsConfig, parse_metrics
from postfix_mtasts.core.config_postfix import PostfixConfig, parse_postfix
from postfix_mtasts.core.config_reports import ReportsConfig, parse_reports
from postfix_mtasts.core.config_toml import ConfigError, Table, rule, section, show
from postfix_mtasts.core.redis_url import RedisUrlError, parse_redis_url
from postfix_mtasts.core.value import Value

__all__ = [
    "DEFAULT_CONTROL_SOCKET",
    "DEFAULT_STORE_PATH",
    "MAX_WAIT_S",
    "MIN_FAILURE_BACKOFF_S",
    "CacheConfig",
    "Config",
    "ConfigError",
    "ControlConfig",
    "DaneSetting",
    "DefaultLevel",
    "DnsConfig",
    "DnsFailure",
    "DnssecProbe",
    "FetchConfig",
    "ListenerConfig",
    "ListenerProtocol",
    "LogConfig",
    "LogFormat",
    "LogLevelName",
    "MapConfig",
    "MatchSource",
    "MetricsConfig",
    "PostfixConfig",
    "RedisConfig",
    "RefreshConfig",
    "ReportsConfig",
    "ServerConfig",
    "StoreConfig",
    "load",
    "parse_config",
]

DnsFailure = Literal["notfound", "temp"]
MatchSource = Literal["patterns", "mx"]
#: ``[maps.NAME] dane``: forced on or off, or "auto": on exactly when
#: Postfix's smtp_dns_support_level is dnssec (core.dane_auto).
DaneSetting = bool | Literal["auto"]
#: The level Postfix uses for a domain without this map (``[maps.NAME]
#: default_level``): what a report-only answer carries (core.report).
DefaultLevel = Literal["may", "encrypt", "dane"]
LogLevelName = Literal["debug", "info", "warn", "error"]
LogFormat = Literal["text", "json"]

#: Ceiling for the fetch timeout and the lookup budget: Postfix gives up on a
#: socketmap or tcp_table reply after 100 s (spec G6, G14).
MAX_WAIT_S = 90.0
#: RFC 8461 §3.3: wait at least 5 minutes after a failed fetch (spec B14).
MIN_FAILURE_BACKOFF_S = 300.0

#: The built-in defaults write nothing to disk: memory only, no control
#: socket.  conf/postfix-mtasts.toml names the store and the socket in the
#: unit's StateDirectory= and RuntimeDirectory=.
DEFAULT_STORE_PATH = ""
DEFAULT_CONTROL_SOCKET = ""

_G14 = "Postfix gives up on a reply after 100 s, G14"
_D11 = "re-check the TXT id well before Postfix bounces mail, D11"
_B14 = "RFC 8461 §3.3: SHOULD wait at least 5 minutes after a failed fetch, B14"
_MAP_NAME = re.compile(r"[A-Za-z0-9_-]+")
_DNS_FAILURES = get_args(DnsFailure)
_MATCH_SOURCES = get_args(MatchSource)
_DEFAULT_LEVELS = get_args(DefaultLevel)
_LOG_LEVELS = get_args(LogLevelName)
_LOG_FORMATS = get_args(LogFormat)


@frozen(repr=False)
class MapConfig(Value):
    """How one map (a socketmap name) answers.  ``default_level`` is the
    admin's ``smtp_tls_security_level``, used by the TLSRPT report-only
    answers so that they never lower it.  ``dane`` as the file says it;
    start-up replaces "auto" with what Postfix can do, and the answers read
    :attr:`dane_on`."""

    strict_testing: bool = field(default=False, metadata=rule())
    tlsrpt: bool = field(default=False, metadata=rule())
    dns_failure: DnsFailure = field(
        default="notfound", metadata=rule(choices=_DNS_FAILURES)
    )
    # RFC 8461 §2, D13: never answer `secure` where DANE applies (L9, L11);
    # but `dane-only` defers all mail on a Postfix without dnssec (V6).
    dane: DaneSetting = field(default="auto", metadata=rule())
    # "mx": match= lists the current MX names the patterns allow (L7, G22).
    match: MatchSource = field(
        default="patterns", metadata=rule(choices=_MATCH_SOURCES)
    )
    default_level: DefaultLevel = field(
        default="may", metadata=rule(choices=_DEFAULT_LEVELS)
    )

    @property
    def dane_on(self) -> bool:
        """DANE precedence is in effect: ``dane = true``, or "auto" that
        start-up resolved to true; an "auto" not resolved is off."""
        return self.dane is True


@frozen(repr=False)
class FetchConfig(Value):
    """HTTPS policy fetches; ``ca_file`` None = the system trust store."""

    timeout_s: float = field(
        default=20.0, metadata=rule("timeout", above=0, most=MAX_WAIT_S, why=_G14)
    )
    ca_file: str | None = field(default=None, metadata=rule())
    max_in_flight: int = field(default=32, metadata=rule(least=1))


@frozen(repr=False)
class CacheConfig(Value):
    max_entries: int = field(default=100_000, metadata=rule(least=1))
    recheck_interval_s: float = field(
        default=3600.0,
        metadata=rule("recheck_interval", above=0, most=86400, why=_D11),
    )
    negative_ttl_s: float = field(default=300.0, metadata=rule("negative_ttl", least=0))
    failure_backoff_s: float = field(
        default=MIN_FAILURE_BACKOFF_S,
        metadata=rule("failure_backoff", least=MIN_FAILURE_BACKOFF_S, why=_B14),
    )


@frozen(repr=False)
class ServerConfig(Value):
    max_connections: int = field(default=512, metadata=rule(least=1))
    idle_timeout_s: float = field(default=120.0, metadata=rule("idle_timeout", above=0))
    lookup_budget_s: float = field(
        default=15.0,
        metadata=rule("lookup_budget", above=0, most=MAX_WAIT_S, why=_G14),
    )
    max_request_bytes: int = field(default=10_000, metadata=rule(least=1, most=100_000))
    # Postfix waits for each reply before its next request (G6): it owes one.
    max_pending_per_connection: int = field(
        default=16, metadata=rule(least=1, most=10_000)
    )
    # Postfix writes each request whole: one begun and not complete within
    # this is a peer holding a slot, not asking (F9).
    request_timeout_s: float = field(
        default=5.0, metadata=rule("request_timeout", above=0, most=MAX_WAIT_S)
    )


@frozen(repr=False)
class StoreConfig(Value):
    """The embedded persistent store; ``path`` "" = memory only."""

    path: str = field(default=DEFAULT_STORE_PATH, metadata=rule())


@frozen(repr=False)
class RedisConfig(Value):
    """The fleet store; ``url`` "" = none; values sealed with the keys in
    ``fleet_key_file`` (None: unsealed, any Redis writer sets policies)."""

    url: str = field(default="", metadata=rule())
    prefix: str = field(default="mtasts:", metadata=rule())
    timeout_s: float = field(default=1.0, metadata=rule("timeout", above=0, most=30))
    claim_ttl_s: float = field(
        default=30.0, metadata=rule("claim_ttl", above=0, most=MAX_WAIT_S)
    )
    fleet_key_file: str | None = field(default=None, metadata=rule())


@frozen(repr=False)
class RefreshConfig(Value):
    """Proactive refresh (RFC 8461 §3.3, §10.2; spec E5, D11)."""

    enabled: bool = field(default=True, metadata=rule())
    interval_s: float = field(default=60.0, metadata=rule("interval", above=0))
    refetch_after_s: float = field(
        default=86400.0, metadata=rule("refetch_after", above=0)
    )
    recently_used_s: float = field(
        default=86400.0, metadata=rule("recently_used", least=0)
    )
    max_in_flight: int = field(default=4, metadata=rule(least=1))


@frozen(repr=False)
class ControlConfig(Value):
    """The local admin socket (``postfix-mtasts cache ...``); "" = off."""

    socket: str = field(default=DEFAULT_CONTROL_SOCKET, metadata=rule())


@frozen(repr=False)
class LogConfig(Value):
    level: LogLevelName = field(default="info", metadata=rule(choices=_LOG_LEVELS))
    format: LogFormat = field(default="text", metadata=rule(choices=_LOG_FORMATS))


@frozen(repr=False)
class Config(Value):
    """The whole configuration.  ``maps`` keeps the file's order; ``warnings``
    are problems worth logging at start that do not stop the daemon."""

    listeners: tuple[ListenerConfig, ...] = (ListenerConfig(),)
    maps: tuple[tuple[str, MapConfig], ...] = (("postfix", MapConfig()),)
    dns: DnsConfig = field(factory=DnsConfig)
    fetch: FetchConfig = FetchConfig()
    cache: CacheConfig = CacheConfig()
    server: ServerConfig = ServerConfig()
    log: LogConfig = LogConfig()
    store: StoreConfig = StoreConfig()
    redis: RedisConfig = RedisConfig()
    refresh: RefreshConfig = RefreshConfig()
    control: ControlConfig = ControlConfig()
    postfix: PostfixConfig = field(factory=PostfixConfig)
    metrics: MetricsConfig = field(factory=MetricsConfig)
    reports: ReportsConfig = field(factory=ReportsConfig)
    warnings: tuple[str, ...] = ()

    @property
    def map_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.maps)

    def map_named(self, name: str) -> MapConfig | None:
        """The map called ``name``, or None if no ``[maps.NAME]`` defines it."""
        for known, profile in self.maps:
            if known == name:
                return profile
        return None


def load(path: str | None) -> Config:
    """Read and parse the file at ``path``; None gives the embedded defaults."""
    if path is None:
        return parse_config("")
    try:
        with open(path, "rb") as f:
            data = f.read()
        text = data.decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8: {e}") from e
    try:
        return parse_config(text)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def parse_config(text: str) -> Config:
    """Parse and validate TOML ``text``; missing keys take their defaults."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML: {e}") from None
    top = Table(raw, "")
    maps = _parse_maps(top)
    warnings: list[str] = []
    listeners = parse_listeners(
        top, {name for name, _ in maps}, warnings, default=Config().listeners
    )
    config = Config(
        listeners=listeners,
        maps=maps,
        dns=parse_dns(top.table("dns")),
        fetch=section(FetchConfig, top.table("fetch")),
        cache=section(CacheConfig, top.table("cache")),
        server=section(ServerConfig, top.table("server")),
        log=section(LogConfig, top.table("log")),
        store=section(StoreConfig, top.table("store")),
        redis=_parse_redis(top.table("redis")),
        refresh=section(RefreshConfig, top.table("refresh")),
        control=section(ControlConfig, top.table("control")),
        postfix=parse_postfix(top.table("postfix")),
        metrics=parse_metrics(top.table("metrics")),
        reports=parse_reports(top.table("reports"), warnings),
        warnings=tuple(warnings),
    )
    top.close()
    if config.reports.endpoint and not (config.reports.store or config.store.path):
        raise ConfigError(
            "reports.store: the receiver needs a report store: name one, or set"
            " [store] path (the reports go beside it)"
        )
    return config


def _parse_redis(t: Table) -> RedisConfig:
    redis = section(RedisConfig, t)
    try:
        if redis.url:
            parse_redis_url(redis.url)
    except RedisUrlError as e:
        raise ConfigError(f"redis.url: {e}, in {show(redis.url)}") from None
    return redis


def _parse_maps(top: Table) -> tuple[tuple[str, MapConfig], ...]:
    if not top.has("maps"):
        return Config().maps
    tables = top.table("maps")
    if not tables.names():
        raise ConfigError(
            "maps: define at least one [maps.NAME] table, or leave out [maps] "
            'for the default "postfix" map'
        )
    maps = []
    for name in tables.names():
        if not _MAP_NAME.fullmatch(name):
            raise ConfigError(
                f"maps.{show(name)}: a map name may hold only letters, digits, "
                '"_" and "-"'
            )
        maps.append((name, section(MapConfig, tables.table(name))))
    return tuple(maps)
