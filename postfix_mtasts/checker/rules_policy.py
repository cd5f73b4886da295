# -*- test-case-name: tests.unit.test_checker_rules -*-
"""The policy host and the policy file (spec H5-H12, H18, H20).  Pure.

The body is parsed by :func:`postfix_mtasts.core.policy.parse_policy`, the
daemon's own parser, with the ``max_age`` cap lifted so that H12 (not H10)
reports an out-of-range ``max_age``.  What that tolerant reader forgave is
reported line by line by :mod:`.rules_tolerance` (H10, H11: other senders
may reject the file); its other notes become the guide's style warnings (H11).
"""

from __future__ import annotations

from postfix_mtasts.checker.facts import (
    FetchFacts,
    FetchProblem,
    Found,
    PolicyHostFacts,
    Stage,
)
from postfix_mtasts.checker.model import Check, Status
from postfix_mtasts.checker.rules_tls import tls_checks
from postfix_mtasts.checker.rules_tolerance import syntax_status, tolerance_checks
from postfix_mtasts.core.policy import (
    MAX_AGE_LIMIT_S,
    Mode,
    Note,
    Policy,
    PolicyInvalid,
    Tolerance,
    parse_policy,
)
from postfix_mtasts.core.policyhost import (
    MAX_POLICY_BYTES,
    MAX_RESPONSE_HEADER_BYTES,
    MAX_RESPONSE_HEADER_LINES,
    split_content_type,
)
from postfix_mtasts.core.text import quote

__all__ = [
    "ENFORCE_MIN_MAX_AGE_S",
    "MIN_MAX_AGE_S",
    "SLOW_FETCH_S",
    "TESTING_MAX_AGE_S",
    "check_fetch",
    "check_max_age",
    "check_policy_body",
    "check_policy_host",
]

MIN_MAX_AGE_S = 86400  # the guide: max_age between 1 day ...
ENFORCE_MIN_MAX_AGE_S = 604800  # §3.2 "weeks or greater"
TESTING_MAX_AGE_S = (604800, 1209600)  # the guide's recommendation for testing
SLOW_FETCH_S = 10.0
_GOOD_CHARSETS = ("utf-8", "us-ascii")
# parse_policy notes (rule -> status, fix) shown as H11
_POLICY_NOTES = {
    "C5": (
        Status.WARN,
        "put 'version: STSv1' on the first line (the guide requires it)",
    ),
    "C7": (Status.WARN, "write keys in lower case: version, mode, mx, max_age"),
    "C14": (Status.WARN, "keep one line per key (mx excepted)"),
    "C1": (Status.INFO, ""),
    "C11": (Status.INFO, ""),
}
_INVALID_FIX = {
    "C4": "the version line must read exactly 'version: STSv1'",
    "C6": "mode must be testing, enforce or none (lower case)",
    "C8": "max_age must be a number of seconds, digits only",
    "C11": "add one 'mx: <host>' line per MX host",
    "C12": "write mx values as host names or '*.domain', in A-label (xn--) form",
    "C13": "mx values are host names: no IP address, port or underscore",
    "C16": "save the file as UTF-8 text, without control characters",
}


# fetch faults other than the status (rule, check, fix)
_FETCH_FAULTS = {
    FetchProblem.TIMEOUT: (
        "H9",
        "policy-time",
        "make the policy host answer within a few seconds",
    ),
    FetchProblem.TOO_LARGE: (
        "H9",
        "policy-size",
        f"keep the policy file under {MAX_POLICY_BYTES} bytes",
    ),
    FetchProblem.HEADERS_TOO_LARGE: (
        "H9",
        "policy-size",
        f"keep the response headers under {MAX_RESPONSE_HEADER_BYTES} bytes"
        f" and {MAX_RESPONSE_HEADER_LINES} lines",
    ),
    FetchProblem.ENCODING: (
        "H8",
        "policy-content-type",
        "serve the file without Content-Encoding (no gzip or br)",
    ),
    FetchProblem.TLS: (
        "H6",
        "policy-tls",
        "serve a trusted, current certificate naming the policy host",
    ),
    FetchProblem.CONNECT: (
        "H5",
        "policy-host-https",
        "serve HTTPS on port 443, reachable from the Internet",
    ),
}


def check_policy_host(
    facts: PolicyHostFacts, host: str, now: float
) -> tuple[list[Check], FetchFacts | None]:
    """H5, H6, H20 for ``mta-sts.<domain>``, and the fetch to judge next (or None)."""
    addresses = facts.addresses
    fix = f"publish an A/AAAA record (or a CNAME to your web host) for {host}"
    if addresses.found is Found.ERROR:
        message = f"DNS lookup of {host} failed: {addresses.reason}"
        return [
            Check("H5", "policy-host-dns", Status.INCONCLUSIVE, host, message)
        ], None
    if addresses.found is Found.NONE:
        message = f"{host} has no A/AAAA record ({addresses.reason})"
        return [Check("H5", "policy-host-dns", Status.FAIL, host, message, fix)], None
    message = f"{host} resolves to {', '.join(addresses.addresses)}"
    checks = [Check("H5", "policy-host-dns", Status.PASS, host, message)]
    if addresses.cname_chain:
        chain = " -> ".join(addresses.cname_chain)
        message = (
            f"{host} is a CNAME to {chain}: the certificate must still name {host}"
        )
        checks.append(
            Check("H20", "policy-host-delegation", Status.INFO, host, message)
        )
    probe = facts.probe
    if probe is None:
        return checks, facts.fetch
    subject = f"{host} [{probe.address}]:443"
    if probe.stage is Stage.CONNECT:
        message = f"cannot connect to {probe.address}:443: {probe.error}"
        fix = "serve HTTPS on port 443 of that address, reachable from the Internet"
        checks.append(
            Check("H5", "policy-host-https", Status.FAIL, subject, message, fix)
        )
        return checks, None
    if probe.tls is None:
        message = f"TLS handshake failed: {probe.error}"
        fix = f"serve HTTPS with a certificate for {host}, TLS 1.2 or later"
        checks.append(Check("H6", "policy-tls", Status.FAIL, subject, message, fix))
        return checks, None
    message = "answers HTTPS"
    checks.append(Check("H5", "policy-host-https", Status.PASS, subject, message))
    tls = tls_checks("H6", "policy", subject, host, probe.tls, now)
    checks += tls
    if any(c.status is Status.FAIL for c in tls):
        return checks, None  # the fetch then fails the same way: said once
    return checks, facts.fetch


def check_fetch(fetch: FetchFacts) -> list[Check]:
    """H6-H9 from the GET: status, redirect, media type, size, time."""
    url = fetch.url
    problem = fetch.problem
    fix_status = f"serve the policy file itself at {url} with status 200"
    if problem is FetchProblem.REDIRECT:
        message = f"answers HTTP {fetch.status} redirect to {quote(fetch.location)}"
        fix = f"{fix_status}: senders never follow redirects (RFC 8461 §3.3)"
        return [Check("H7", "policy-status", Status.FAIL, url, message, fix)]
    if problem is FetchProblem.STATUS:
        message = f"answers HTTP {fetch.status}, not 200"
        return [Check("H7", "policy-status", Status.FAIL, url, message, fix_status)]
    if problem in _FETCH_FAULTS:
        rule, name, fix = _FETCH_FAULTS[problem]
        return [Check(rule, name, Status.FAIL, url, fetch.reason, fix)]
    if problem is not None or fetch.body is None:
        message = f"fetch failed: {fetch.reason}"
        return [Check("H7", "policy-status", Status.FAIL, url, message, fix_status)]
    message = f"HTTP 200 without redirect in {fetch.elapsed_s:.2f} s"
    checks = [Check("H7", "policy-status", Status.PASS, url, message)]
    checks.append(_content_type(url, fetch.content_type))
    size = len(fetch.body)
    message = f"{size} bytes (limit {MAX_POLICY_BYTES})"
    checks.append(Check("H9", "policy-size", Status.PASS, url, message))
    message = f"answered in {fetch.elapsed_s:.2f} s"
    if fetch.elapsed_s > SLOW_FETCH_S:
        fix = "speed the policy host up: senders give up after some seconds"
        checks.append(Check("H9", "policy-time", Status.WARN, url, message, fix))
    else:
        checks.append(Check("H9", "policy-time", Status.PASS, url, message))
    return checks


def _content_type(url: str, value: str | None) -> Check:
    fix = "serve it as 'Content-Type: text/plain; charset=utf-8'"
    media_type, params = split_content_type(value)
    if media_type != "text/plain":
        message = f"Content-Type is {quote(value)}, not text/plain: senders reject it"
        return Check("H8", "policy-content-type", Status.FAIL, url, message, fix)
    charset = params.get("charset")
    if charset is not None and charset.lower() not in _GOOD_CHARSETS:
        message = f"Content-Type {quote(value)}: charset should be utf-8 or us-ascii"
        return Check("H8", "policy-content-type", Status.WARN, url, message, fix)
    return Check(
        "H8", "policy-content-type", Status.PASS, url, f"Content-Type {quote(value)}"
    )


def check_policy_body(url: str, body: bytes) -> tuple[list[Check], Policy | None]:
    """H10, H11, H12, H18 for the policy file."""
    policy = parse_policy(body, max_age_limit=None)
    if isinstance(policy, PolicyInvalid):
        message = f"policy is invalid ({policy.rule}): {policy.reason}"
        fix = _INVALID_FIX.get(
            policy.rule, "write one 'key: value' per line, no blank lines or comments"
        )
        checks = [Check("H10", "policy-syntax", Status.FAIL, url, message, fix)]
        checks += tolerance_checks(url, body, policy.notes, accepted=False)
        return checks + _notes(url, policy.notes), None
    departures = tolerance_checks(
        url, body, policy.notes, accepted=True, mode=policy.mode
    )
    reading = (
        f"mode {policy.mode.value}, max_age {policy.max_age},"
        f" mx {', '.join(p.text for p in policy.mx) or '(none)'}"
    )
    status = syntax_status(departures)
    if status is Status.PASS:
        message = f"valid policy: {reading}"
        checks = [Check("H10", "policy-syntax", status, url, message)]
    else:
        message = (
            "readable, but not RFC 8461 grammar (see the lines below):"
            f" postfix-mtasts reads {reading}"
        )
        fix = "correct the lines named below"
        if status is Status.FAIL:
            message += "; strict senders reject the whole policy"
            fix += ": senders that reject the policy apply no MTA-STS at all"
        checks = [Check("H10", "policy-syntax", status, url, message, fix)]
    checks += departures
    checks += _notes(url, policy.notes)
    if not any(n.tolerance is Tolerance.NONE_MAX_AGE for n in policy.notes):
        checks.append(check_max_age(url, policy.mode, policy.max_age))
    if policy.mode is Mode.NONE:
        message = (
            "mode none: MTA-STS is being withdrawn; keep this policy (new id) until"
            " the old max_age has passed, then delete the records (RFC 8461 §8.3)"
        )
        if status is not Status.PASS:
            message += (
                "; senders that reject this file (see policy-syntax) keep their"
                " cached policy instead: correct it first"
            )
        checks.append(Check("H18", "policy-mode", Status.INFO, url, message))
    return checks, policy


def _notes(url: str, notes: tuple[Note, ...]) -> list[Check]:
    checks = []
    for note in notes:
        if note.tolerance is not None:
            continue  # reported by rules_tolerance
        status, fix = _POLICY_NOTES.get(note.rule, (Status.INFO, ""))
        if note.rule == "C14" and note.text.startswith("unknown"):
            status, fix = Status.INFO, ""
        name = "policy-version-first" if note.rule == "C5" else "policy-style"
        message = f"{note.text} ({note.rule})"
        if note.rule == "C14" and note.text.startswith("duplicate"):
            message += ": senders where the last line wins read the other value"
        checks.append(Check("H11", name, status, url, message, fix))
    return checks


def _days(seconds: int) -> str:
    days = seconds / 86400
    if days == 1:
        return "1 day"
    return f"{days:g} days" if days.is_integer() else f"{days:.2f} days"


def check_max_age(url: str, mode: Mode, max_age: int) -> Check:
    """H12: 86400..31557600 (the guide); testing 604800..1209600; enforce >= 1 week."""

    def result(status: Status, why: str = "", fix: str = "") -> Check:
        message = f"max_age {max_age} ({_days(max_age)}){why}"
        return Check("H12", "policy-max-age", status, url, message, fix)

    if max_age > MAX_AGE_LIMIT_S:
        fix = f"use at most {MAX_AGE_LIMIT_S} (about a year), e.g. 1209600"
        return result(
            Status.FAIL, f" exceeds {MAX_AGE_LIMIT_S}: senders reject the policy", fix
        )
    if max_age < MIN_MAX_AGE_S:
        return result(
            Status.WARN, f" is under {MIN_MAX_AGE_S} (1 day)", "use at least 86400"
        )
    low, high = TESTING_MAX_AGE_S
    if mode is Mode.TESTING and not low <= max_age <= high:
        why = f": the guide recommends {low}-{high} (1-2 weeks) for testing"
        return result(Status.WARN, why, "use max_age: 604800 while testing")
    if mode is Mode.ENFORCE and max_age < ENFORCE_MIN_MAX_AGE_S:
        why = ": enforce with under a week gives little protection (RFC 8461 §10.2)"
        return result(Status.WARN, why, "raise max_age to 1209600 or more")
    return result(Status.PASS)
