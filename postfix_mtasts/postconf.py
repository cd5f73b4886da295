# -*- test-case-name: tests.unit.test_postconf -*-
"""Ask Postfix's ``postconf`` whether Postfix does DANE, once at start.

Maps with ``dane = "auto"`` have DANE precedence exactly when Postfix's
``smtp_dns_support_level`` is ``dnssec`` (:mod:`postfix_mtasts.core.dane_auto`).
:func:`settle_dane` runs ``postconf [-c DIR] -xh config_directory
smtp_dns_support_level`` (``-x``: ``$name`` expanded, as Postfix reads it)
as a child process through the reactor (:mod:`postfix_mtasts.childprocess`):
4 KiB of output at most, 10 s, the program found where Postfix installs it
(``/usr/sbin/postconf``, then the absolute directories of ``PATH``), run
with a fixed ``PATH`` and nothing else from the environment (so no
``MAIL_CONFIG``: the directory is ``[postfix] config_directory`` or
Postfix's own default).  It logs one line and returns the config with each
"auto" resolved.  Read once: a change to main.cf needs a restart.
"""

from __future__ import annotations

import os
from typing import Any

from attrs import evolve
from twisted.logger import Logger

from postfix_mtasts.childprocess import ChildResult, run_child
from postfix_mtasts.core.config import Config
from postfix_mtasts.core.dane_auto import (
    PostfixDns,
    auto_maps,
    dane_summary,
    parse_postconf_output,
    resolve_dane,
)
from postfix_mtasts.core.text import quote

__all__ = [
    "MAX_OUTPUT_BYTES",
    "POSTCONF",
    "TIMEOUT_S",
    "find_postconf",
    "read_postfix_dns",
    "settle_dane",
]

log = Logger()

#: Where Debian's (and Postfix's default) install puts postconf.
POSTCONF = "/usr/sbin/postconf"
TIMEOUT_S = 10.0
MAX_OUTPUT_BYTES = 4096
_CHILD_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def find_postconf(
    search_path: str | None = None, installed: str = POSTCONF
) -> str | None:
    """The absolute path of an executable ``postconf``: ``installed``, else
    the first in ``search_path`` (default: ``$PATH``), whose relative
    entries are skipped; None when there is none."""
    if search_path is None:
        search_path = os.environ.get("PATH", "")
    candidates = [installed] + [
        os.path.join(d, "postconf") for d in search_path.split(os.pathsep)
    ]
    for candidate in candidates:
        if (
            os.path.isabs(candidate)
            and os.path.isfile(candidate)
            and os.access(candidate, os.X_OK)
        ):
            return candidate
    return None


async def read_postfix_dns(
    reactor: Any,
    config_directory: str | None,
    *,
    executable: str | None = None,
    timeout_s: float = TIMEOUT_S,
    max_bytes: int = MAX_OUTPUT_BYTES,
) -> PostfixDns:
    """Postfix's smtp_dns_support_level from ``executable`` (default:
    :func:`find_postconf`) reading ``config_directory`` (None: Postfix's
    default); never raises: a failure is a level of None and its reason."""
    given = f"postconf -c {config_directory}" if config_directory else "postconf"
    program = executable or find_postconf()
    if program is None:
        return PostfixDns(None, given, f"no postconf in {POSTCONF} or PATH")
    argv = [program]
    if config_directory:
        argv += ["-c", config_directory]
    argv += ["-xh", "config_directory", "smtp_dns_support_level"]
    result = await run_child(
        reactor,
        reactor,
        argv,
        env={"PATH": _CHILD_PATH},
        timeout_s=timeout_s,
        max_bytes=max_bytes,
    )
    if not result.ok:
        return PostfixDns(None, given, f"{program} {_failure(result)}")
    parsed = parse_postconf_output(result.stdout)
    if isinstance(parsed, str):
        return PostfixDns(None, given, parsed)
    directory, level = parsed
    return PostfixDns(level, f"postconf -c {directory}")


def _failure(result: ChildResult) -> str:
    """How a postconf run failed, with the last line it wrote to standard
    error (its ``fatal:`` line comes after any warnings)."""
    lines = result.stderr.strip().split(b"\n")
    said = lines[-1].decode("utf-8", "replace") if lines[-1] else ""
    return result.describe() + (f": {quote(said)}" if said else "")


async def settle_dane(
    config: Config, reactor: Any, *, executable: str | None = None
) -> tuple[Config, PostfixDns | None]:
    """``config`` with every ``dane = "auto"`` resolved from Postfix, and
    what Postfix said (None when no map says "auto": postconf is not run).
    Logs one line: info when postconf answered, a warning when it could
    not be asked (DANE precedence is then off for those maps)."""
    if not auto_maps(config.maps):
        return config, None
    postfix = await read_postfix_dns(
        reactor, config.postfix.config_directory, executable=executable
    )
    summary = dane_summary(config.maps, postfix)
    emit = log.warn if summary.warn else log.info
    emit(
        "DANE precedence {dane} for maps {maps}: {reason}",
        dane="on" if summary.on else "off",
        maps=", ".join(summary.maps),
        reason=summary.reason,
    )
    return evolve(config, maps=resolve_dane(config.maps, postfix.level)), postfix
