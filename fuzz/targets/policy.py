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
        require(_RULE.match(result.rule) is not None, f"rule {result.rule!r}")
        require(single_line(result.reason), f"reason {result.reason!r}")
        if result.rule != "C9":
            require(unlimited == result, f"C9 lifted changes {result!r}")
        return
    require(isinstance(result, Policy), f"result {result!r}")
    require(unlimited == result, f"C9 lifted changes {result!r}")
    check_policy(result)
    stored = parse_policy("\n".join(result.lines).encode())
    require(
        isinstance(stored, Policy)
        and (stored.mode, stored.max_age, stored.mx, stored.lines)
        == (result.mode, result.max_age, result.mx, result.lines),
        f"stored lines parse as {stored!r}, not {result!r} (C18)",
    )
    if result.mx:  # what Postfix hears for enforce (and strict testing)
        check_replies(result)


def check_policy(policy: Policy) -> None:
    require(isinstance(policy.mode, Mode), f"mode {policy.mode!r}")
    require(0 <= policy.max_age <= MAX_AGE_LIMIT_S, f"max_age {policy.max_age}")
    require(bool(policy.mx) or policy.mode is Mode.NONE, "no mx (C11)")
    texts = [pattern.text for pattern in policy.mx]
    require(len(set(texts)) == len(texts), f"duplicate mx in {texts!r} (C11)")
    for pattern in policy.mx:
        require(parse_mx_pattern(pattern.text) == pattern, f"mx {pattern!r}")
        require(pattern.text.isascii() and len(pattern.text) <= 253, repr(pattern))
        require(not pattern.text.endswith("."), f"mx {pattern!r} (C13)")
    for line in policy.lines:
        require("\n" not in line and "\r" not in line, f"line {line!r} (C1)")
    for note in policy.notes:
        require(single_line(note.text), f"note {note!r}")


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
            if not _UNEMBEDDABLE.search(line)
        ),
    ]
    answer = Answer.ok(value)
    payload = socketmap.encode_reply(answer)
    text = payload[payload.index(b":") + 1 : -1].decode("utf-8")
    require(text.startswith("OK "), f"socketmap reply {payload!r}")
    check_value(text[3:], [full])
    line = tcptable.encode_reply(answer)
    require(line.endswith(b"\n") and line.count(b"\n") == 1, f"{line!r}")
    decoded = tcptable.unquote(line[:-1])
    if decoded is None:
        raise ContractError(f"Postfix cannot %-decode {line!r}")
    if decoded.startswith(b"200 "):
        check_value(decoded[4:].decode("utf-8"), [full, plain])
    else:
        require(decoded == b"400 " + _TOO_LARGE, f"tcp_table reply {line!r}")


def check_value(text: str, allowed: list[list[tuple[str, str]]]) -> None:
    """``text`` read as Postfix reads it is ``secure`` with one of ``allowed``
    (with or without the TLSRPT attributes, G17, G31)."""
    level, attributes = read_policy_value(text)
    require(level == "secure", f"level {level!r} in {text!r}")
    require(attributes in allowed, f"attributes {attributes!r} of {text!r}")
