# -*- test-case-name: tests.unit.test_config -*-
"""The ``[postfix]`` table: which Postfix the daemon answers.

Pure.  ``config_directory`` is the directory ``postconf -c`` reads, where
the daemon learns at start whether Postfix does DANE (maps with
``dane = "auto"``, :mod:`postfix_mtasts.core.dane_auto`); None asks
Postfix's own default (``/etc/postfix`` on Debian).
"""

from __future__ import annotations

from attrs import field, frozen

from postfix_mtasts.core.config_toml import ConfigError, Table, rule, section, show
from postfix_mtasts.core.value import Value

__all__ = ["MAX_DIRECTORY_CHARS", "PostfixConfig", "parse_postfix"]

#: PATH_MAX: no longer directory name can be opened.
MAX_DIRECTORY_CHARS = 4096


@frozen(repr=False)
class PostfixConfig(Value):
    """``config_directory``: an absolute path, or None for Postfix's own."""

    config_directory: str | None = field(default=None, metadata=rule())


def parse_postfix(t: Table) -> PostfixConfig:
    """The ``[postfix]`` table (closed: unknown keys are errors)."""
    config = section(PostfixConfig, t)
    directory = config.config_directory
    if directory is not None and (
        not directory.startswith("/")
        or len(directory) > MAX_DIRECTORY_CHARS
        or not directory.isprintable()
    ):
        raise ConfigError(
            'postfix.config_directory: expected "" or an absolute path (the '
            f"directory of Postfix's main.cf), got {show(directory)}"
        )
    return config
