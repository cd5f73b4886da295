# -*- test-case-name: tests.unit.test_answer -*-
"""What Postfix hears: an answer as data, rendered per map.

An :class:`Answer` is produced by the decision code and rendered by a codec
(socketmap or tcp_table).  The TLS policy value is kept as data (level plus
attributes) so each map can render it within its own size limit and with or
without the Postfix >= 3.10 TLSRPT attributes.
"""

from __future__ import annotations

import enum

from attrs import frozen

__all__ = [
    "Answer",
    "Status",
    "StsReportAttributes",
    "TlsPolicyValue",
    "render_value",
]


class Status(enum.Enum):
    """The socketmap status words (spec G4); tcp_table maps them to 200/500/400."""

    OK = "OK"
    NOTFOUND = "NOTFOUND"
    TEMP = "TEMP"
    PERM = "PERM"


@frozen
class StsReportAttributes:
    """Postfix >= 3.10 TLSRPT attributes for an STS answer (spec G25-G28).

    ``mx_host_patterns`` are the policy's ``mx`` values verbatim (``*.`` kept);
    ``policy_strings`` are the policy's lines in their original order.
    """

    policy_domain: str
    mx_host_patterns: tuple[str, ...]
    policy_strings: tuple[str, ...]


@frozen(cache_hash=True)
class TlsPolicyValue:
    """A Postfix TLS policy value: a security level and its attributes (spec G18).

    ``match`` is the colon-separated ``match=`` list as a tuple (never empty for
    ``secure``); ``servername`` is ``hostname`` for STS answers (spec D6, G21).
    """

    level: str
    match: tuple[str, ...] = ()
    servername: str | None = None
    report: StsReportAttributes | None = None


@frozen(cache_hash=True)
class Answer:
    """One reply to one lookup.  ``value`` is set only for ``Status.OK``;
    ``reason`` is the text sent with TEMP/PERM (and logged)."""

    status: Status
    value: TlsPolicyValue | None = None
    reason: str = ""

    @classmethod
    def ok(cls, value: TlsPolicyValue, reason: str = "") -> Answer:
        return cls(Status.OK, value, reason)

    @classmethod
    def notfound(cls, reason: str = "") -> Answer:
        return cls(Status.NOTFOUND, None, reason)

    @classmethod
    def temp(cls, reason: str) -> Answer:
        return cls(Status.TEMP, None, reason)

    @classmethod
    def perm(cls, reason: str) -> Answer:
        return cls(Status.PERM, None, reason)


def render_value(value: TlsPolicyValue, *, with_report: bool = True) -> str:
    """Render a policy value as Postfix reads it (spec G18, G24).

    Attributes with whitespace are wrapped as ``{ name = value }``; a policy
    line that contains a brace cannot be wrapped safely and is dropped
    (spec G27), and so is one with a control character other than TAB (a
    NUL would cut Postfix's C string short and leave a brace open).
    """
    parts = [value.level]
    if value.match:
        parts.append("match=" + ":".join(value.match))
    if value.servername is not None:
        parts.append("servername=" + value.servername)
    report = value.report
    if with_report and report is not None:
        parts.append("policy_type=sts")
        parts.append("policy_domain=" + report.policy_domain)
        parts.extend("mx_host_pattern=" + p for p in report.mx_host_patterns)
        parts.extend(
            "{ policy_string = " + line + " }"
            for line in report.policy_strings
            if _embeddable(line)
        )
    return " ".join(parts)


def _embeddable(line: str) -> bool:
    return not any(c in "{}\x7f" or (c < " " and c != "\t") for c in line)
