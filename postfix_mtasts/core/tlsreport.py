# -*- test-case-name: tests.unit.test_tlsreport -*-
"""Read one SMTP TLS report (RFC 8460 §4) from its JSON bytes.

Pure.  The bytes come from whoever mailed them, so everything is bounded
before it is trusted: the size of the JSON (:data:`MAX_REPORT_BYTES`), its
nesting, the number of policies and failure details, the length of every
string.  The reader is tolerant of what the RFC leaves open or senders do
differently (unknown fields are ignored, ``mx-host`` may be one string,
``contact-info`` may be missing) and strict about the types of the fields
it knows: a report that breaks them is refused with one reason, never
half read.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from attrs import frozen

from postfix_mtasts.core.text import quote
from postfix_mtasts.core.value import Value

__all__ = [
    "MAX_DETAILS",
    "MAX_POLICIES",
    "MAX_REPORT_BYTES",
    "MAX_SESSION_COUNT",
    "MAX_STRINGS",
    "MAX_STRING_CHARS",
    "FailureDetail",
    "PolicyResult",
    "ReportRefused",
    "TlsReport",
    "parse_report",
]

#: The most bytes of JSON a report may have (after decompression).  Daily
#: reports of the largest senders are kilobytes; this leaves room for a
#: report with thousands of failure details and still fits in memory.
MAX_REPORT_BYTES = 8 * 1024 * 1024
#: The most policies one report may carry (one per policy domain and type).
MAX_POLICIES = 1_000
#: The most failure details in one report, over all its policies.
MAX_DETAILS = 10_000
#: The most elements of a list of strings (``policy-string``, ``mx-host``).
MAX_STRINGS = 1_000
#: The most characters of any string in a report.
MAX_STRING_CHARS = 1_024
#: The largest session count accepted (exact in a double and in SQLite).
MAX_SESSION_COUNT = 2**53 - 1
#: Policy types of RFC 8460 §4.4 (the ``policy-type`` values).
POLICY_TYPES = frozenset({"sts", "tlsa", "no-policy-found"})

# RFC 3339 date-time (§5.6): full-date "T" full-time, with an offset.
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)


@frozen(repr=False)
class FailureDetail(Value):
    """One ``failure-details`` element (RFC 8460 §4.3, §4.4)."""

    result_type: str
    failed_session_count: int
    sending_mta_ip: str = ""
    receiving_mx_hostname: str = ""
    receiving_mx_helo: str = ""
    receiving_ip: str = ""
    additional_information: str = ""
    failure_reason_code: str = ""


@frozen(repr=False)
class PolicyResult(Value):
    """One ``policies`` element: the policy the sender applied, and the
    sessions it counted under it."""

    policy_type: str
    policy_domain: str
    successful: int
    failed: int
    policy_strings: tuple[str, ...] = ()
    mx_hosts: tuple[str, ...] = ()
    failures: tuple[FailureDetail, ...] = ()


@frozen(repr=False)
class TlsReport(Value):
    """A report that passed every check; times are POSIX seconds (UTC)."""

    organization: str
    report_id: str
    start: float
    end: float
    contact: str
    policies: tuple[PolicyResult, ...]


@frozen(repr=False)
class ReportRefused(Value):
    """Bytes that are no usable report, and why (one line)."""

    reason: str


class _RefusedError(Exception):
    """Raised inside the reader, returned as :class:`ReportRefused`."""


def parse_report(data: bytes) -> TlsReport | ReportRefused:
    """The report in ``data`` (UTF-8 JSON, RFC 8460 §4.4), or why not."""
    if len(data) > MAX_REPORT_BYTES:
        return ReportRefused(f"report over {MAX_REPORT_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return ReportRefused(f"not UTF-8 (byte {e.start})")
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        return ReportRefused("JSON nested too deeply")
    except ValueError as e:  # JSONDecodeError, a huge integer, NaN
        return ReportRefused(f"not JSON: {_first_line(e)}")
    try:
        return _report(document)
    except _RefusedError as e:
        return ReportRefused(str(e))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def _report(document: object) -> TlsReport:
    top = _object(document, "the report")
    policies = _list(top, "policies", "the report", MAX_POLICIES, required=True)
    dates = _object(_field(top, "date-range", "the report"), "date-range")
    start = _datetime(dates, "start-datetime")
    end = _datetime(dates, "end-datetime")
    if end < start:
        raise _RefusedError("date-range: end-datetime is before start-datetime")
    details = sum(
        len(p["failure-details"])
        for p in policies
        if isinstance(p, dict) and isinstance(p.get("failure-details"), list)
    )
    if details > MAX_DETAILS:  # counted before any is read
        raise _RefusedError(f"{details} failure-details, more than {MAX_DETAILS}")
    results = tuple(_policy(p, f"policies[{i}]") for i, p in enumerate(policies))
    return TlsReport(
        organization=_string(top, "organization-name", "the report", required=True),
        report_id=_string(top, "report-id", "the report", required=True),
        start=start,
        end=end,
        contact=_string(top, "contact-info", "the report"),
        policies=results,
    )


def _policy(value: object, where: str) -> PolicyResult:
    entry = _object(value, where)
    policy = _object(_field(entry, "policy", where), f"{where}.policy")
    summary = _object(_field(entry, "summary", where), f"{where}.summary")
    inner = f"{where}.policy"
    policy_type = _string(policy, "policy-type", inner, required=True)
    if policy_type not in POLICY_TYPES:
        raise _RefusedError(f"{inner}.policy-type: unknown type {quote(policy_type)}")
    details = _list(entry, "failure-details", where, MAX_DETAILS)
    return PolicyResult(
        policy_type=policy_type,
        policy_domain=_name(_string(policy, "policy-domain", inner, required=True)),
        successful=_count(
            summary, "total-successful-session-count", f"{where}.summary"
        ),
        failed=_count(summary, "total-failure-session-count", f"{where}.summary"),
        policy_strings=_strings(policy, "policy-string", inner),
        mx_hosts=_strings(policy, "mx-host", inner, one_allowed=True),
        failures=tuple(
            _detail(d, f"{where}.failure-details[{i}]") for i, d in enumerate(details)
        ),
    )


def _detail(value: object, where: str) -> FailureDetail:
    detail = _object(value, where)
    return FailureDetail(
        result_type=_string(detail, "result-type", where, required=True),
        failed_session_count=_count(detail, "failed-session-count", where),
        sending_mta_ip=_string(detail, "sending-mta-ip", where),
        receiving_mx_hostname=_name(_string(detail, "receiving-mx-hostname", where)),
        receiving_mx_helo=_string(detail, "receiving-mx-helo", where),
        receiving_ip=_string(detail, "receiving-ip", where),
        additional_information=_string(detail, "additional-information", where),
        failure_reason_code=_string(detail, "failure-reason-code", where),
    )


def _name(text: str) -> str:
    """A domain name as compared: lower case, without a final dot."""
    return text.lower().removesuffix(".")


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _RefusedError(f"{where} is {_kind(value)}, not an object")
    return value


def _field(mapping: dict[str, object], name: str, where: str) -> object:
    if name not in mapping:
        raise _RefusedError(f"{where} has no {name!r}")
    return mapping[name]


def _wrong(value: object, where: str, wanted: str) -> _RefusedError:
    return _RefusedError(f"{where} is {_kind(value)}, not {wanted}")


def _string(
    mapping: dict[str, object], name: str, where: str, *, required: bool = False
) -> str:
    if name not in mapping and not required:
        return ""
    value = _field(mapping, name, where)
    if not isinstance(value, str):
        raise _wrong(value, f"{where}.{name}", "a string")
    if required and not value:  # an empty report-id would match every other
        raise _RefusedError(f"{where}.{name} is empty")
    return _bounded(value, f"{where}.{name}")


def _bounded(value: str, where: str) -> str:
    if len(value) > MAX_STRING_CHARS:
        raise _RefusedError(f"{where} is over {MAX_STRING_CHARS} characters")
    return value


def _count(mapping: dict[str, object], name: str, where: str) -> int:
    value = _field(mapping, name, where)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong(value, f"{where}.{name}", "an integer")
    if not 0 <= value <= MAX_SESSION_COUNT:
        raise _RefusedError(f"{where}.{name} is {value}, out of 0..{MAX_SESSION_COUNT}")
    return value


def _list(
    mapping: dict[str, object],
    name: str,
    where: str,
    most: int,
    *,
    required: bool = False,
) -> list[object]:
    if name not in mapping and not required:
        return []
    value = _field(mapping, name, where)
    if not isinstance(value, list):
        raise _wrong(value, f"{where}.{name}", "an array")
    if len(value) > most:
        raise _RefusedError(
            f"{where}.{name} has {len(value)} elements, more than {most}"
        )
    return value


def _strings(
    mapping: dict[str, object], name: str, where: str, *, one_allowed: bool = False
) -> tuple[str, ...]:
    if one_allowed and isinstance(mapping.get(name), str):
        return (_string(mapping, name, where),)
    values = _list(mapping, name, where, MAX_STRINGS)
    out = []
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise _wrong(value, f"{where}.{name}[{i}]", "a string")
        out.append(_bounded(value, f"{where}.{name}[{i}]"))
    return tuple(out)


def _datetime(mapping: dict[str, object], name: str) -> float:
    where = "date-range"
    text = _string(mapping, name, where, required=True)
    if not _DATETIME.fullmatch(text):
        raise _RefusedError(
            f"{where}.{name} {quote(text)} is not an RFC 3339 date-time"
        )
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        return moment.astimezone(UTC).timestamp()
    except (ValueError, OverflowError):  # 24:00, a leap second, year 0
        raise _RefusedError(f"{where}.{name} {quote(text)} is no such time") from None


def _kind(value: object) -> str:
    """The JSON type of ``value``, for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
