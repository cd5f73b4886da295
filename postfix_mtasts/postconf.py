# -*- test-case-name: tests.unit.test_postconf -*-
"""Ask Postfix's ``postconf`` whether Postfix does DANE, once at start.

Maps with ``dane = "auto"`` have DANE precedence exactly when Postfix's
``smtp_dns_support_level`` is ``dnssec`` (:mod:`postfix_mtasts.core.dane_auto`).
:func:`settle_dane` runs ``postconf -c DIR -xh smtp_dns_support_level``
(``-x``: ``$name`` expanded, as Postfix reads it).  DIR is ``[postfix]
config_directory``, or Postfix's compiled-in default from ``postconf -dh
config_directory``; never ``MAIL_CONFIG``: the child gets a fixed ``PATH``
and nothing else from the environment.  Each run is a child process of the
reactor (:mod:`postfix_mtasts.childprocess`): 4 KiB of output, 10 s, the
program found where Postfix installs it (``/usr/sbin/postconf``, then the
absolute directories of ``PATH``).  It logs one line and returns the config
with each "auto" resolved.  Read at start and again at each reload
(SIGHUP, :mod:`postfix_mtasts.reload`).
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
    Unexpected,
    auto_maps,
    dane_summary,
    postconf_value,
    resolve_dane,
)
from postfix_mtasts.core.text import quote

__all__ = [
    "MAX_OUTPUT_BYTES",
    "POSTCONF",
    "TIMEOUT_S",
    "find_postconf",
    "read_postfix_dns",
    "report_dane",
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
    compiled-in default, from ``postconf -dh config_directory``, which
    reads no main.cf); never raises: a failure is a level of None and its
    reason.  A directory without a readable main.cf is reported without
    running postconf on it, which would pause a second on its fatal error."""
    given = f"postconf -c {config_directory}" if config_directory else "postconf"
    program = executable or find_postconf()
    if program is None:
        return PostfixDns(None, given, f"no postconf in {POSTCONF} or PATH")

    async def ask(*args: str, path: bool = False) -> str | Unexpected:
        result = await run_child(
            reactor,
            reactor,
            [program, *args],
            env={"PATH": _CHILD_PATH},
            timeout_s=timeout_s,
            max_bytes=max_bytes,
        )
        if not result.ok:
            return Unexpected(f"{program} {_failure(result)}")
        return postconf_value(result.stdout, path=path)

    directory: str | Unexpected = config_directory or await ask(
        "-dh", "config_directory", path=True
    )
    if isinstance(directory, Unexpected):
        return PostfixDns(None, given, directory.reason)
    source = f"postconf -c {directory}"
    main_cf = os.path.join(directory, "main.cf")
    if not os.access(main_cf, os.R_OK):
        return PostfixDns(None, source, f"cannot read {main_cf}")
    level = await ask("-c", directory, "-xh", "smtp_dns_support_level")
    if isinstance(level, Unexpected):
        return PostfixDns(None, source, level.reason)
    return PostfixDns(level, source)


def _failure(result: ChildResult) -> str:
    """How a postconf run failed, with the last line it wrote to standard
    error (its ``fatal:`` line comes after any warnings)."""
    lines = result.stderr.strip().split(b"\n")
    said = lines[-1].decode("utf-8", "replace") if lines[-1] else ""
    return result.describe() + (f": {quote(said)}" if said else "")


async def settle_dane(
    config: Config,
    reactor: Any,
    *,
    executable: str | None = None,
    quiet: bool = False,
) -> tuple[Config, PostfixDns | None]:
    """``config`` with every ``dane = "auto"`` resolved from Postfix, and
    what Postfix said (None when no map says "auto": postconf is not run).
    Logs one line (unless ``quiet``: a reload logs it only on a change,
    :func:`report_dane`): info when postconf answered, a warning when it
    could not be asked (DANE precedence is then off for those maps)."""
    if not auto_maps(config.maps):
        return config, None
    postfix = await read_postfix_dns(
        reactor, config.postfix.config_directory, executable=executable
    )
    if not quiet:
        report_dane(config, postfix)
    return evolve(config, maps=resolve_dane(config.maps, postfix.level)), postfix


def report_dane(config: Config, postfix: PostfixDns) -> None:
    """The one line about what Postfix said of DANE for ``config``'s
    "auto" maps."""
    summary = dane_summary(config.maps, postfix)
    emit = log.warn if summary.warn else log.info
    emit(
        "DANE precedence {dane} for maps {maps}: {reason}",
        dane="on" if summary.on else "off",
        maps=", ".join(summary.maps),
        reason=summary.reason,
    )
