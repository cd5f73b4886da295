# -*- test-case-name: tests.unit.test_dane_auto -*-
"""``dane = "auto"``: DANE precedence exactly where Postfix can do DANE.

Pure.  Postfix defers every ``dane-only`` answer while its own
``smtp_dns_support_level`` is not ``dnssec`` (docs/postfix-versions.md, V6),
and answering ``dane`` there instead would quietly drop a ``secure`` domain
to opportunistic TLS.  So a map with ``dane = "auto"`` (the default) has
DANE precedence (spec D13) when Postfix's level is ``dnssec`` and not
otherwise, nor when the level cannot be read.  At start the daemon reads it
with ``postconf`` (:mod:`postfix_mtasts.postconf`) and :func:`resolve_dane`
turns each "auto" into true or false; :func:`dane_summary` is the one line
logged about it, :func:`dane_reason` what ``query`` shows per map.
"""

from __future__ import annotations

from attrs import evolve, frozen

from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.value import Value

__all__ = [
    "DNSSEC_LEVEL",
    "MAX_POSTCONF_LINE",
    "DaneSummary",
    "Maps",
    "PostfixDns",
    "Unexpected",
    "auto_maps",
    "dane_reason",
    "dane_summary",
    "does_dane",
    "postconf_value",
    "resolve_dane",
]

Maps = tuple[tuple[str, MapConfig], ...]

#: The one smtp_dns_support_level at which Postfix does DANE.
DNSSEC_LEVEL = "dnssec"
#: The longest line of postconf output taken (a path, or a level word).
MAX_POSTCONF_LINE = 1024


@frozen(repr=False)
class PostfixDns(Value):
    """What ``postconf`` said of Postfix at start: ``level`` is its
    ``smtp_dns_support_level`` ("" when unset), None when it could not be
    read (``error`` says why); ``source`` names what was asked
    (``postconf -c /etc/postfix``)."""

    level: str | None
    source: str
    error: str = ""


@frozen(repr=False)
class DaneSummary(Value):
    """The start-up line: DANE precedence ``on`` or off for the ``maps``
    that say "auto", and why; ``warn`` when Postfix could not be asked."""

    on: bool
    maps: tuple[str, ...]
    reason: str
    warn: bool


def does_dane(level: str | None) -> bool:
    """Whether a Postfix with this ``smtp_dns_support_level`` does DANE:
    only at ``dnssec``, a word Postfix reads in any case; an unknown level
    (None) does not."""
    return level is not None and level.strip().lower() == DNSSEC_LEVEL


def auto_maps(maps: Maps) -> tuple[str, ...]:
    """The names of the maps whose ``dane`` is "auto"."""
    return tuple(name for name, profile in maps if profile.dane == "auto")


def resolve_dane(maps: Maps, level: str | None) -> Maps:
    """``maps`` with each ``dane = "auto"`` made true when ``level`` (Postfix's
    smtp_dns_support_level, None if unknown) is ``dnssec``, else false;
    ``dane = true`` and ``false`` stay as they are."""
    on = does_dane(level)
    return tuple(
        (name, evolve(profile, dane=on) if profile.dane == "auto" else profile)
        for name, profile in maps
    )


@frozen(repr=False)
class Unexpected(Value):
    """postconf output that is not one value: ``reason`` says what it was."""

    reason: str


def postconf_value(stdout: bytes, *, path: bool = False) -> str | Unexpected:
    """The one value ``postconf -h NAME`` printed (stripped), or why the
    output is not that: one line of printable ASCII of at most
    :data:`MAX_POSTCONF_LINE` characters; with ``path``, an absolute one."""
    try:
        text = stdout.decode("ascii")
    except UnicodeDecodeError:
        return Unexpected(f"postconf wrote non-ASCII output {quote(stdout, 80)}")
    value, newline, rest = text.partition("\n")
    if (
        not newline
        or rest
        or len(value) > MAX_POSTCONF_LINE
        or not value.isprintable()
        or (path and not value.startswith("/"))
    ):
        return Unexpected(f"postconf wrote {quote(text, 80)}")
    return value.strip()


def dane_summary(maps: Maps, postfix: PostfixDns) -> DaneSummary:
    """The one line logged at start about the maps with ``dane = "auto"``."""
    names = auto_maps(maps)
    if postfix.level is None:
        reason = (
            f"cannot read Postfix's smtp_dns_support_level ({postfix.error}); "
            "set [postfix] config_directory to the directory of Postfix's "
            "main.cf, or dane = true on a map to force DANE precedence"
        )
        return DaneSummary(False, names, reason, warn=True)
    said = f"Postfix smtp_dns_support_level = {quote(postfix.level)} ({postfix.source})"
    if does_dane(postfix.level):
        return DaneSummary(True, names, said, warn=False)
    reason = (
        f"{said}, not {DNSSEC_LEVEL!r}: Postfix would defer every dane-only "
        "answer; dane = true forces DANE precedence"
    )
    return DaneSummary(False, names, reason, warn=False)


def dane_reason(profile: MapConfig, postfix: PostfixDns | None) -> str:
    """Why a map has DANE precedence or not, for ``query``: its ``dane`` as
    the file says it and, for "auto", what Postfix said (``postfix``)."""
    if profile.dane is not True and profile.dane is not False:
        if postfix is None:
            return 'dane = "auto", Postfix not asked'
        if postfix.level is None:
            return f'dane = "auto", Postfix not known: {postfix.error}'
        return (
            f'dane = "auto", Postfix smtp_dns_support_level = '
            f"{quote(postfix.level)} ({postfix.source})"
        )
    return "dane = true" if profile.dane else "dane = false"
