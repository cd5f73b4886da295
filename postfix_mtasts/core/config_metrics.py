# -*- test-case-name: tests.unit.test_config_metrics -*-
"""The ``[metrics]`` table: where Prometheus text is served, if anywhere.

Pure.  ``endpoint`` is a Twisted strports string (``tcp:``, ``tcp6:``,
``unix:``, ``systemd:``); "" (the default) serves nothing.  A TCP endpoint
must listen on loopback unless ``allow_remote = true``: the page is
unauthenticated, and while it names no domain it tells who asks how much
mail goes where, so exposing it is an explicit choice.
"""

from __future__ import annotations

from attrs import field, frozen

# The listeners' loopback test, shared so both tables judge endpoints alike.
from postfix_mtasts.core.config_listeners import (
    checked_endpoint,
    non_loopback_interface,
)
from postfix_mtasts.core.config_toml import ConfigError, Table, rule, section, show
from postfix_mtasts.core.value import Value

__all__ = ["MetricsConfig", "parse_metrics"]

_ENDPOINT_KINDS = ("tcp", "tcp6", "unix", "systemd")


@frozen(repr=False)
class MetricsConfig(Value):
    """``endpoint`` "" = no metrics; ``allow_remote`` lets a TCP endpoint
    listen beyond loopback."""

    endpoint: str = field(default="", metadata=rule())
    allow_remote: bool = field(default=False, metadata=rule())


def parse_metrics(t: Table) -> MetricsConfig:
    """The ``[metrics]`` table (closed: unknown keys are errors)."""
    config = section(MetricsConfig, t)
    endpoint = config.endpoint
    if not endpoint:
        return config
    kind = checked_endpoint("metrics.endpoint", endpoint, _ENDPOINT_KINDS)
    if kind.startswith("tcp") and not config.allow_remote:
        exposed = non_loopback_interface(endpoint)
        if exposed is not None:
            raise ConfigError(
                f"metrics.endpoint: {show(endpoint)} listens on {exposed}; "
                "metrics are unauthenticated: name interface=127.0.0.1 or ::1, "
                "use a unix: socket, or set metrics.allow_remote = true"
            )
    return config
