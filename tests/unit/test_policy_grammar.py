"""A property of the tolerant policy reader: a body the RFC 8461 §3.2 grammar
generates is read exactly, with no tolerance noted (spec C1-C15, issue 12).

Bounded by the hypothesis profiles in tests/conftest.py.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.policy import (
    MAX_AGE_LIMIT_S,
    Mode,
    Policy,
    parse_policy,
)

_ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGIT = "0123456789"
_WSP = st.text(" \t", max_size=3)
_KNOWN_KEYS = {"version", "mode", "max_age", "mx"}

# RFC 5321 Domain as the reader accepts it (decided, C12/C13): two or more
# LDH labels of 1-63 characters, any case, the last not all digits, no
# "xn--" prefix (an A-label must be valid IDNA, which a random label is not).
_LABEL = st.builds(
    lambda first, middle, last: first + middle + last if middle or last else first,
    st.sampled_from(_ALPHA + _DIGIT),
    st.text(_ALPHA + _DIGIT + "-", max_size=20),
    st.text(_ALPHA + _DIGIT, max_size=1),
).filter(lambda label: label[-1] != "-" and not label.lower().startswith("xn--"))
_DOMAIN = st.lists(_LABEL, min_size=2, max_size=4).filter(
    lambda labels: not labels[-1].isdigit()
)
_MX = st.builds(
    lambda wildcard, labels: ("*." if wildcard else "") + ".".join(labels),
    st.booleans(),
    _DOMAIN,
)

# sts-policy-ext-name and sts-policy-ext-value (a vchar, then vchars and
# spaces, ending in a vchar; vchar is %x21-7E or UTF-8 beyond ASCII).
_EXT_NAME = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_ALPHA + _DIGIT),
    st.text(_ALPHA + _DIGIT + "_-.", max_size=31),
).filter(lambda name: name not in _KNOWN_KEYS)
_VCHAR = st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.characters(
    min_codepoint=0x80, exclude_categories=["Cs"]
)
_EXT_VALUE = st.lists(
    st.tuples(st.text(_VCHAR, min_size=1, max_size=8), st.text(" ", max_size=2)),
    min_size=1,
    max_size=4,
).map(lambda words: "".join(word + gap for word, gap in words).rstrip(" "))
_MAX_AGE = st.integers(min_value=0, max_value=MAX_AGE_LIMIT_S)


def _field(key: str, value: str, data: st.DataObject) -> str:
    """One field: key, ':', optional WSP, the value, optional WSP."""
    return f"{key}:{data.draw(_WSP)}{value}{data.draw(_WSP)}"


class StrictGrammarTests(SynchronousTestCase):
    @given(
        mode=st.sampled_from(Mode),
        max_age=_MAX_AGE,
        mx=st.lists(_MX, max_size=4),
        extensions=st.lists(st.tuples(_EXT_NAME, _EXT_VALUE), max_size=3),
        duplicates=st.lists(
            st.sampled_from([("mode", "none"), ("max_age", "1"), ("version", "STSv1")]),
            max_size=2,
        ),
        data=st.data(),
    )
    def test_grammar_body_read_exactly(
        self,
        mode: Mode,
        max_age: int,
        mx: list[str],
        extensions: list[tuple[str, str]],
        duplicates: list[tuple[str, str]],
        data: st.DataObject,
    ) -> None:
        """C1-C15: a body built from the RFC 8461 §3.2 ABNF (fields in any
        order, WSP after ':' and at line end, max_age with leading zeros up to
        10 digits, mx in any case, extensions with UTF-8 values, LF or CRLF per
        line, final terminator or not, later duplicates of known keys) reads
        with no tolerance noted and exactly the fields generated: its mode,
        max_age, mx lower-cased and deduplicated in order, and its lines."""
        if mode is not Mode.NONE and not mx:
            mx = ["mail.example.com"]
        digits = str(max_age)
        digits = "0" * data.draw(st.integers(0, 10 - len(digits))) + digits
        lines = [
            _field("version", "STSv1", data),
            _field("mode", mode.value, data),
            _field("max_age", digits, data),
            *(_field("mx", value, data) for value in mx),
            *(_field(name, value, data) for name, value in extensions),
        ]
        lines = data.draw(st.permutations(lines))
        lines += [_field(key, value, data) for key, value in duplicates]
        terms = data.draw(
            st.lists(
                st.sampled_from(["\n", "\r\n"]),
                min_size=len(lines),
                max_size=len(lines),
            )
        )
        if data.draw(st.booleans()):
            terms[-1] = ""  # no final terminator
        body = "".join(line + term for line, term in zip(lines, terms, strict=True))

        policy = parse_policy(body.encode("utf-8"))

        assert isinstance(policy, Policy), (body, policy)
        self.assertEqual(policy.tolerated, (), body)
        self.assertEqual(policy.mode, mode)
        self.assertEqual(policy.max_age, max_age)
        in_order = [line.partition(":")[2].strip(" \t") for line in lines]
        expected_mx = dict.fromkeys(
            value.lower()
            for line, value in zip(lines, in_order, strict=True)
            if line.startswith("mx:")
        )
        self.assertEqual([p.text for p in policy.mx], list(expected_mx))
        self.assertEqual(policy.lines, tuple(lines))
