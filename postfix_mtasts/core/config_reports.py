# -*- test-case-name: tests.unit.test_config_reports -*-
"""The ``[reports]`` table: the TLS report store, and the HTTPS receiver
that fills it, if any.

Pure.  RFC 8460 §3 lets a domain's ``rua`` name an ``https:`` URI, and
§5.3 has senders POST each report to it.  ``endpoint`` is where the
daemon takes those POSTs: a Twisted strports string, ``ssl:`` (the daemon
speaks TLS itself) or ``tcp:``, ``tcp6:``, ``unix:``, ``systemd:`` (behind
a reverse proxy that does); "" (the default) receives nothing.  A plain
TCP endpoint beyond loopback is accepted with a warning: senders only POST
over HTTPS, so something in front must add TLS.  ``store`` is the report
store both the receiver and ``postfix-mtasts reports`` use ("" = beside
the policy store); ``path`` the URL path the ``rua`` names.  Every size,
connection and time the receiver spends on a stranger is bounded here.
"""

from __future__ import annotations

import re

from attrs import field, frozen

# The listeners' loopback test, shared so every table judges endpoints alike.
from postfix_mtasts.core.config_listeners import (
    checked_endpoint,
    non_loopback_interface,
)
from postfix_mtasts.core.config_toml import ConfigError, Table, rule, section, show
from postfix_mtasts.core.value import Value

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_REPORT_PATH",
    "MAX_BODY_BYTES",
    "ReportsConfig",
    "parse_reports",
]

#: The URL path a ``rua=https://HOST/tlsrpt`` names.
DEFAULT_REPORT_PATH = "/tlsrpt"
#: A compressed daily report of the largest senders is kilobytes.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: The most ``max_body_bytes`` may be: the body is held in memory.
MAX_BODY_BYTES = 16 * 1024 * 1024

_ENDPOINT_KINDS = ("ssl", "tcp", "tcp6", "unix", "systemd")
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,199}")


@frozen(repr=False)
class ReportsConfig(Value):
    """``endpoint`` "" = no receiver; ``store`` "" = beside ``[store]
    path``; the rest bounds what one sender can make the receiver hold."""

    endpoint: str = field(default="", metadata=rule())
    store: str = field(default="", metadata=rule())
    path: str = field(default=DEFAULT_REPORT_PATH, metadata=rule())
    max_body_bytes: int = field(
        default=DEFAULT_MAX_BODY_BYTES, metadata=rule(least=1, most=MAX_BODY_BYTES)
    )
    max_connections: int = field(default=16, metadata=rule(least=1, most=1024))
    timeout_s: float = field(default=30.0, metadata=rule("timeout", above=0, most=300))


def parse_reports(t: Table, warnings: list[str]) -> ReportsConfig:
    """The ``[reports]`` table (closed: unknown keys are errors); a plain
    TCP receiver beyond loopback adds a warning."""
    config = section(ReportsConfig, t)
    if not _PATH.fullmatch(config.path) or "//" in config.path:
        raise ConfigError(
            f"reports.path: expected a URL path such as {DEFAULT_REPORT_PATH!r}"
            f" (no query, no fragment), got {show(config.path)}"
        )
    endpoint = config.endpoint
    if not endpoint:
        return config
    kind = checked_endpoint("reports.endpoint", endpoint, _ENDPOINT_KINDS)
    if kind.startswith("tcp"):
        exposed = non_loopback_interface(endpoint)
        if exposed is not None:
            warnings.append(
                f"reports.endpoint: {show(endpoint)} listens on {exposed} without"
                " TLS; senders POST reports to https: URIs only (RFC 8460 §3),"
                " so put a TLS reverse proxy in front, or use an ssl: endpoint"
            )
    return config
