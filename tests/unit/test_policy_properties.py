"""Property tests for the pure parsers in postfix_mtasts.core.policy (spec A, C).

Bounded by the hypothesis profiles in tests/conftest.py.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.policy import (
    MAX_AGE_LIMIT_S,
    Mode,
    MxPattern,
    Policy,
    PolicyInvalid,
    parse_mx_pattern,
    parse_policy,
)
from postfix_mtasts.core.record import RecordInvalid, StsRecord, parse_sts_records

# Fragments that steer generated input into the parsers' deeper branches.
_POLICY_PIECES = st.sampled_from(
    [
        "version",
        "mode",
        "max_age",
        "mx",
        "Mode",
        "x-foo",
        ":",
        ": ",
        "STSv1",
        "enforce",
        "none",
        "testing",
        "86400",
        "*.",
        "example.com",
        "xn--",
        ".",
        " ",
        "\t",
        "\n",
        "\r\n",
        "\r",
        "#",
        "\ufeff",
        "\u00e9",
        "\x00",
    ]
)
_TXT_PIECES = st.sampled_from(
    [b"v=STSv1", b"v=STSv10", b";", b" ", b"\t", b"id=", b"abc", b"=", b"x", b"\xff"]
)
_LDH = "abcdefghijklmnopqrstuvwxyz0123456789"
_LABEL = st.text(_LDH + "-", min_size=1, max_size=12).filter(
    lambda label: label[0] != "-" != label[-1] and not label.startswith("xn--")
)
_TLD = st.text(_LDH[:26], min_size=2, max_size=6)
_HOST = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_LABEL, min_size=1, max_size=3),
    _TLD,
)
_MX = st.tuples(st.booleans(), _HOST).map(lambda t: ("*." if t[0] else "") + t[1])


class NeverRaiseTests(SynchronousTestCase):
    @given(st.binary(max_size=2048))
    def test_policy_arbitrary_bytes(self, data: bytes) -> None:
        """C17/C19: parse_policy returns Policy or PolicyInvalid for any bytes."""
        self.assertIsInstance(parse_policy(data), (Policy, PolicyInvalid))

    @given(st.lists(_POLICY_PIECES | st.text(max_size=8), max_size=60))
    def test_policy_near_miss_text(self, pieces: list[str]) -> None:
        """C1-C16: policy-like text never raises; a rejection names a rule and
        a one-line reason."""
        result = parse_policy("".join(pieces).encode("utf-8", "surrogatepass"))
        self.assertIsInstance(result, (Policy, PolicyInvalid))
        if isinstance(result, PolicyInvalid):
            self.assertRegex(result.rule, r"\A[A-Z][0-9]+\Z")
            self.assertNotIn("\n", result.reason)

    @given(st.lists(st.lists(st.binary(max_size=64), max_size=4), max_size=4))
    def test_records_arbitrary_bytes(self, records: list[list[bytes]]) -> None:
        """A2-A14: parse_sts_records returns StsRecord or RecordInvalid for any
        list of lists of bytes."""
        result = parse_sts_records(records)
        self.assertIsInstance(result, (StsRecord, RecordInvalid))

    @given(
        st.lists(st.lists(st.lists(_TXT_PIECES, max_size=12), max_size=3), max_size=3)
    )
    def test_records_near_miss(self, pieces: list[list[list[bytes]]]) -> None:
        """A2-A14: record-like input never raises; a valid id is 1-32 alnum."""
        result = parse_sts_records([[b"".join(s) for s in rr] for rr in pieces])
        self.assertIsInstance(result, (StsRecord, RecordInvalid))
        if isinstance(result, StsRecord):
            self.assertRegex(result.id, r"\A[A-Za-z0-9]{1,32}\Z")
        else:
            self.assertNotIn("\n", result.reason)

    @given(st.text(max_size=80) | _MX.map(str.upper))
    def test_mx_pattern(self, value: str) -> None:
        """C12/C13: parse_mx_pattern never raises; a result is normalised and
        parses to itself again."""
        pattern = parse_mx_pattern(value)
        if pattern is not None:
            self.assertEqual(pattern.text, pattern.text.lower())
            self.assertFalse(pattern.text.endswith("."))
            self.assertEqual(parse_mx_pattern(pattern.text), pattern)


class RoundTripTests(SynchronousTestCase):
    @given(
        mode=st.sampled_from(Mode),
        max_age=st.integers(min_value=0, max_value=MAX_AGE_LIMIT_S),
        mx=st.lists(_MX, max_size=5),
        extra=st.booleans(),
        data=st.data(),
    )
    def test_round_trip(
        self, mode: Mode, max_age: int, mx: list[str], extra: bool, data: st.DataObject
    ) -> None:
        """C1, C5, C11, C14, C18: a policy built from generated fields parses back
        to the same values, with LF or CRLF, in any line order; re-parsing its
        lines (as the cache does) gives the same policy again."""
        if mode is not Mode.NONE and not mx:
            mx = ["mail.example.com"]
        lines = ["version: STSv1", f"mode: {mode.value}", f"max_age: {max_age}"]
        lines += [f"mx: {value}" for value in mx]
        if extra:
            lines.append("x-comment: generated for a round trip")
        lines = data.draw(st.permutations(lines))
        in_order = [line.removeprefix("mx: ") for line in lines if line[:3] == "mx:"]
        expected_mx = tuple(dict.fromkeys(parse_mx_pattern(v) for v in in_order))
        self.assertNotIn(None, expected_mx)
        for term in ("\n", "\r\n"):
            for final in (term, ""):
                policy = parse_policy((term.join(lines) + final).encode())
                assert isinstance(policy, Policy), policy
                self.assertEqual(policy.mode, mode)
                self.assertEqual(policy.max_age, max_age)
                self.assertEqual(policy.mx, expected_mx)
                self.assertEqual(policy.lines, tuple(lines))
                again = parse_policy("\n".join(policy.lines).encode())
                self.assertEqual(again, policy)

    @given(st.lists(_MX, min_size=1, max_size=4))
    def test_mx_texts(self, mx: list[str]) -> None:
        """C12, D4: generated mx values keep their text; wildcard/base agree."""
        for value in mx:
            pattern = parse_mx_pattern(value)
            self.assertIsInstance(pattern, MxPattern)
            assert pattern is not None
            self.assertEqual(pattern.text, value)
            self.assertEqual(pattern.wildcard, value.startswith("*."))
            self.assertEqual(pattern.base, value.removeprefix("*."))
