# -*- test-case-name: tests.unit.test_fuzz_targets -*-
"""Fuzz the policy body parser and the reply built from it (spec C1-C19,
G18-G28).

Input: the body, as a policy host sends it.

Contract: ``parse_policy`` never raises.  A PolicyInvalid names a rule
with a one-line reason.  A Policy obeys the spec's limits: a mode, max_age
in 0..MAX_AGE_LIMIT_S (C8, C9), at least one mx unless mode none (C11),
each mx a normalised, deduplicated pattern that parses to itself (C12, C13),
lines free of line terminators; its lines, stored and parsed again, give the
same policy (C18: what a cache store relies on).  Without the max_age limit
the parse differs only where C9 applies.  The enforce reply built from it,
read back as Postfix reads it, carries exactly the attributes the daemon
meant (G18, G24-G28): nothing in a body adds, drops or changes one.
"""

from __future__ import annotations

import re

from fuzz.contract import ContractError, require, single_line
from fuzz.postfix_attrs import read_policy_value
from postfix_mtasts.core import socketmap, tcptable
from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.mx import policy_value
from postfix_mtasts.core.policy import (
    MAX_AGE_LIMIT_S,
    Mode,
    Policy,
    PolicyInvalid,
    Tolerance,
    parse_mx_pattern,
    parse_policy,
)

_RULE = re.compile(r"[A-Z][0-9]{1,2}\Z")
_DOMAIN = "policy.example"
_WSP = " \t"
# Lines the renderer drops rather than embed (answer.render_value, G27).
_UNEMBEDDABLE = re.compile(r"[{}\x00-\x08\x0a-\x1f\x7f]")
_TOO_LARGE = socketmap.TOO_LARGE_REASON.encode()


def one_input(data: bytes) -> None:
    result = parse_policy(data)
    unlimited = parse_policy(data, max_age_limit=None)
    if isinstance(result, PolicyInvalid):
        require(_RULE.match(result.rule) is not None, "rule %r", result.rule)
        require(single_line(result.reason), "reason %r", result.reason)
        if result.rule != "C9":
            require(unlimited == result, "C9 lifted changes %r", result)
        return
    require(isinstance(result, Policy), "result %r", result)
    if not _none_over_cap(result):
        require(unlimited == result, "C9 lifted changes %r", result)
    check_policy(result)
    stored = parse_policy("\n".join(result.lines).encode())
    require(
        isinstance(stored, Policy)
        and (stored.mode, stored.max_age, stored.mx, stored.lines)
        == (result.mode, result.max_age, result.mx, result.lines),
        "stored lines parse as %r, not %r (C18)",
        stored,
        result,
    )
    if result.mx:  # what Postfix hears for enforce (and strict testing)
        check_replies(result)


def _none_over_cap(policy: Policy) -> bool:
    """A mode-none policy whose max_age is over the C9 cap is kept a day
    with the cap, and read as written without it."""
    return any(
        note.tolerance is Tolerance.NONE_MAX_AGE and note.rule == "C9"
        for note in policy.notes
    )


def check_policy(policy: Policy) -> None:
    require(isinstance(policy.mode, Mode), "mode %r", policy.mode)
    require(0 <= policy.max_age <= MAX_AGE_LIMIT_S, "max_age %s", policy.max_age)
    require(bool(policy.mx) or policy.mode is Mode.NONE, "no mx (C11)")
    texts = [pattern.text for pattern in policy.mx]
    require(len(set(texts)) == len(texts), "duplicate mx in %r (C11)", texts)
    for pattern in policy.mx:
        require(parse_mx_pattern(pattern.text) == pattern, "mx %r", pattern)
        require(pattern.text.isascii() and len(pattern.text) <= 253, repr(pattern))
        require(not pattern.text.endswith("."), "mx %r (C13)", pattern)
    for line in policy.lines:
        require("\n" not in line and "\r" not in line, "line %r (C1)", line)
    for note in policy.notes:
        require(single_line(note.text), "note %r", note)


def check_replies(policy: Policy) -> None:
    """The reply Postfix reads is the one the daemon built (G18, G24-G28)."""
    value = policy_value(_DOMAIN, policy, report=True)
    plain = [("match", ":".join(value.match)), ("servername", "hostname")]
    full = [
        *plain,
        ("policy_type", "sts"),
        ("policy_domain", _DOMAIN),
        *(("mx_host_pattern", pattern.text) for pattern in policy.mx),
        *(
            ("policy_string", line.strip(_WSP))
            for line in policy.lines
            if line.strip(_WSP) and not _UNEMBEDDABLE.search(line)
        ),
    ]
    answer = Answer.ok(value)
    payload = socketmap.encode_reply(answer)
    text = payload[payload.index(b":") + 1 : -1].decode("utf-8")
    require(text.startswith("OK "), "socketmap reply %r", payload)
    check_value(text[3:], [full])
    line = tcptable.encode_reply(answer)
    require(line.endswith(b"\n") and line.count(b"\n") == 1, "%r", line)
    decoded = tcptable.unquote(line[:-1])
    if decoded is None:
        raise ContractError(f"Postfix cannot %-decode {line!r}")
    if decoded.startswith(b"200 "):
        check_value(decoded[4:].decode("utf-8"), [full, plain])
    else:
        require(decoded == b"400 " + _TOO_LARGE, "tcp_table reply %r", line)


def check_value(text: str, allowed: list[list[tuple[str, str]]]) -> None:
    """``text`` read as Postfix reads it is ``secure`` with one of ``allowed``
    (with or without the TLSRPT attributes, G17, G31)."""
    level, attributes = read_policy_value(text)
    require(level == "secure", "level %r in %r", level, text)
    require(attributes in allowed, "attributes %r of %r", attributes, text)
