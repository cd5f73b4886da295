# -*- test-case-name: tests.unit.test_answer -*-
"""What Postfix hears: an answer as data, rendered per map.

An :class:`Answer` is produced by the decision code and rendered by a codec
(socketmap or tcp_table).  The TLS policy value is kept as data (level plus
attributes) so each map can render it within its own size limit and with or
without the Postfix >= 3.10 TLSRPT attributes.

A *report-only* value exists only to hand Postfix the TLSRPT attributes of a
domain it must not enforce (testing mode, or a policy that could not be had):
its level is the admin's own (``may``, ``encrypt`` or ``dane``), it never has
``match=`` (Postfix defers ``may`` with ``match=``, spec L2) and without its
attributes it means nothing, so a codec that cannot fit them answers
``NOTFOUND`` instead.
"""

from __future__ import annotations

import enum

from attrs import frozen

from postfix_mtasts.core.value import Value

__all__ = [
    "POLICY_FAILURE_LEVELS",
    "REPORT_ONLY_LEVELS",
    "Answer",
    "PolicyFailure",
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


#: The levels a report-only value may carry: what Postfix would use without
#: this map (``[maps.NAME] default_level``).  Never ``secure`` (spec L4).
REPORT_ONLY_LEVELS = ("may", "encrypt", "dane")
#: The levels at which ``policy_failure`` cannot defer mail: Postfix forces
#: certificate verification to fail, and only levels that need no match
#: ignore that.  At ``dane`` a domain with usable TLSA records would be
#: deferred (read in the Postfix 3.10.13 source), breaking DANE (D13).
POLICY_FAILURE_LEVELS = ("may", "encrypt")


class PolicyFailure(enum.StrEnum):
    """Why no valid policy could be had: the RFC 8460 §4.3 result type that
    Postfix reports as ``policy_failure=`` (spec G29, D14)."""

    FETCH_ERROR = "sts-policy-fetch-error"
    WEBPKI_INVALID = "sts-webpki-invalid"
    POLICY_INVALID = "sts-policy-invalid"


@frozen(repr=False)
class StsReportAttributes(Value):
    """Postfix >= 3.10 TLSRPT attributes for an STS answer (spec G25-G29).

    ``mx_host_patterns`` are the policy's ``mx`` values verbatim (``*.`` kept);
    ``policy_strings`` are the policy's lines in their original order;
    ``policy_failure`` says why no policy could be had (then there are no
    patterns and no lines).
    """

    policy_domain: str
    mx_host_patterns: tuple[str, ...] = ()
    policy_strings: tuple[str, ...] = ()
    policy_failure: PolicyFailure | None = None


@frozen(cache_hash=True, repr=False)
class TlsPolicyValue(Value):
    """A Postfix TLS policy value: a security level and its attributes (spec G18).

    ``match`` is the colon-separated ``match=`` list as a tuple (never empty for
    ``secure``); ``servername`` is ``hostname`` for STS answers (spec D6, G21).
    ``report_only``: the value carries TLSRPT attributes and nothing Postfix
    would not do anyway (see the module docstring); the checks below make a
    report-only value with ``match=``, a ``secure`` level or no report, or a
    ``policy_failure`` on an enforcing value or at ``dane``, impossible to
    build (L2, L4, D13).
    """

    level: str
    match: tuple[str, ...] = ()
    servername: str | None = None
    report: StsReportAttributes | None = None
    report_only: bool = False

    def __attrs_post_init__(self) -> None:
        failure = self.report is not None and self.report.policy_failure is not None
        if self.report_only:
            if self.level not in REPORT_ONLY_LEVELS or self.match:
                raise ValueError(f"a report-only value cannot be {self.level!r}/match=")
            if self.report is None:
                raise ValueError("a report-only value needs its report")
            if failure and self.level not in POLICY_FAILURE_LEVELS:
                raise ValueError(f"policy_failure would defer mail at {self.level!r}")
        elif failure:
            raise ValueError("policy_failure only in a report-only value (L4)")


@frozen(cache_hash=True, repr=False)
class Answer(Value):
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
    NUL would cut Postfix's C string short and leave a brace open), and a
    blank one (a tolerated blank line carries nothing, and Postfix would see
    an attribute with no value).
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
        if report.policy_failure is not None:
            parts.append("policy_failure=" + report.policy_failure.value)
        parts.extend("mx_host_pattern=" + p for p in report.mx_host_patterns)
        parts.extend(
            "{ policy_string = " + line + " }"
            for line in report.policy_strings
            if _embeddable(line)
        )
    return " ".join(parts)


def _embeddable(line: str) -> bool:
    return bool(line.strip(" \t")) and not any(
        c in "{}\x7f" or (c < " " and c != "\t") for c in line
    )
