"""Reading one TLS report's JSON (RFC 8460 §4.4, spec I): what senders send
is read whole, anything else is refused with one reason, and every size is
bounded before it is trusted (§7: reports are untrusted input)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.tlsreport import (
    MAX_DETAILS,
    MAX_POLICIES,
    MAX_REPORT_BYTES,
    MAX_SESSION_COUNT,
    MAX_STRING_CHARS,
    MAX_STRINGS,
    FailureDetail,
    PolicyResult,
    ReportRefused,
    TlsReport,
    parse_report,
)
from postfix_mtasts.core.tlsreport_json import encode_report, report_to_json, rfc3339

from .tlsrpt_samples import DAY_START, GOOGLE, MICROSOFT, report_dict


def _parsed(data: bytes) -> TlsReport:
    report = parse_report(data)
    assert isinstance(report, TlsReport), report
    return report


def _reason(data: bytes | dict[str, Any]) -> str:
    if isinstance(data, dict):
        data = json.dumps(data).encode()
    refused = parse_report(data)
    assert isinstance(refused, ReportRefused), refused
    return refused.reason


def _policy(**changes: Any) -> dict[str, Any]:
    """The sample report with its first policy entry changed."""
    report = report_dict()
    report["policies"][0].update(changes)
    return report


class SenderReportTests(SynchronousTestCase):
    def test_google_report(self) -> None:
        """A one-policy sts report as Google mails it reads whole: metadata,
        the policy's lines and MX patterns, both failure details (§4.4)."""
        report = _parsed(GOOGLE.read_bytes())
        self.assertEqual(
            (report.organization, report.report_id, report.contact),
            (
                "Google Inc.",
                "2024-11-29T00:00:00Z_example.com",
                "smtp-tls-reporting@google.com",
            ),
        )
        self.assertEqual((report.start, report.end), (DAY_START, DAY_START + 86399))
        (policy,) = report.policies
        self.assertEqual(
            (policy.policy_type, policy.policy_domain, policy.mx_hosts),
            ("sts", "example.com", ("mx1.example.com", "*.mx.example.net")),
        )
        self.assertEqual(policy.policy_strings[2], "mx: mx1.example.com")
        self.assertEqual((policy.successful, policy.failed), (1184, 23))
        self.assertEqual(
            policy.failures[0],
            FailureDetail(
                result_type="certificate-expired",
                failed_session_count=17,
                sending_mta_ip="209.85.220.41",
                receiving_mx_hostname="mx1.example.com",
                receiving_ip="192.0.2.10",
            ),
        )

    def test_microsoft_report(self) -> None:
        """Two policies (sts and no-policy-found), the optional detail fields,
        a final dot on an MX name and unknown extension fields (§4.4: the
        reader tolerates what it does not know)."""
        report = _parsed(MICROSOFT.read_bytes())
        sts, none = report.policies
        self.assertEqual(none.policy_type, "no-policy-found")
        self.assertEqual((none.policy_strings, none.mx_hosts), ((), ()))
        self.assertEqual(none.policy_domain, "lists.example.com")
        mismatch = sts.failures[0]
        self.assertEqual(mismatch.receiving_mx_hostname, "backup.mx.example.net")
        self.assertEqual(mismatch.receiving_mx_helo, "smtp.hosting.example")
        self.assertEqual(mismatch.failure_reason_code, "X509_V_ERR_HOSTNAME_MISMATCH")
        self.assertEqual(
            mismatch.additional_information,
            "https://tlsrpt.example/help/host-mismatch",
        )

    def test_tolerated_shapes(self) -> None:
        """What senders do differently is read: no contact-info, mx-host as
        one string, a BOM, upper-case names, an offset date-time, fractions
        of a second, no failure-details at all."""
        data = report_dict(
            date_range={
                "start-datetime": "2024-11-29T01:00:00+01:00",
                "end-datetime": "2024-11-29t23:59:59.999z",
            }
        )
        del data["contact-info"]
        policy = data["policies"][0]
        del policy["failure-details"]
        policy["policy"]["mx-host"] = "MX.Example.COM"
        policy["policy"]["policy-domain"] = "Example.COM."
        report = _parsed(b"\xef\xbb\xbf" + json.dumps(data).encode())
        self.assertEqual(report.contact, "")
        self.assertEqual(report.start, DAY_START)
        self.assertAlmostEqual(report.end, DAY_START + 86399.999, places=3)
        self.assertEqual(
            report.policies[0],
            PolicyResult(
                policy_type="sts",
                policy_domain="example.com",
                successful=10,
                failed=1,
                policy_strings=("version: STSv1", "mode: enforce"),
                mx_hosts=("MX.Example.COM",),
            ),
        )


class RefusalTests(SynchronousTestCase):
    def test_not_json(self) -> None:
        """Bytes that are no UTF-8 JSON object are refused with why (§4.4:
        a report is a JSON object in UTF-8)."""
        for data, reason in (
            (b"\xff\xfe{}", "not UTF-8 (byte 0)"),
            (b'{"a": ', "not JSON: Expecting value"),
            (b"[]", "the report is an array, not an object"),
            (b"null", "the report is null, not an object"),
            (b'{"policies": NaN}', "not JSON: NaN is not a JSON number"),
            (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
            (b"1" * 5000, "not JSON: Exceeds the limit"),
        ):
            self.assertTrue(
                _reason(data).startswith(reason), (data[:20], _reason(data))
            )

    def test_missing_required_fields(self) -> None:
        """Each field RFC 8460 §4.4 requires, missing, names itself."""
        for path, reason in (
            (("organization-name",), "the report has no 'organization-name'"),
            (("report-id",), "the report has no 'report-id'"),
            (("policies",), "the report has no 'policies'"),
            (("date-range",), "the report has no 'date-range'"),
            (("date-range", "end-datetime"), "date-range has no 'end-datetime'"),
            (("policies", 0, "policy"), "policies[0] has no 'policy'"),
            (("policies", 0, "summary"), "policies[0] has no 'summary'"),
            (
                ("policies", 0, "policy", "policy-type"),
                "policies[0].policy has no 'policy-type'",
            ),
            (
                ("policies", 0, "summary", "total-failure-session-count"),
                "policies[0].summary has no 'total-failure-session-count'",
            ),
            (
                ("policies", 0, "failure-details", 0, "result-type"),
                "policies[0].failure-details[0] has no 'result-type'",
            ),
        ):
            data = report_dict()
            parent: Any = data
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
            self.assertEqual(_reason(data), reason)

    def test_empty_required_strings(self) -> None:
        """An empty organization-name, report-id, policy-domain or
        result-type is refused: an empty id would make every other report
        of the sender a duplicate."""
        details = report_dict()["policies"][0]["failure-details"]
        for data, reason in (
            (report_dict(report_id=""), "the report.report-id is empty"),
            (
                report_dict(organization_name=""),
                "the report.organization-name is empty",
            ),
            (
                _policy(policy={"policy-type": "sts", "policy-domain": ""}),
                "policies[0].policy.policy-domain is empty",
            ),
            (
                _policy(**{"failure-details": [{**details[0], "result-type": ""}]}),
                "policies[0].failure-details[0].result-type is empty",
            ),
        ):
            self.assertEqual(_reason(data), reason)

    def test_wrong_types(self) -> None:
        """A known field of the wrong JSON type is refused, naming the field
        and both types: a string count, a boolean count, a float, a string
        where an array goes, a number in a list of strings."""
        details = report_dict()["policies"][0]["failure-details"]
        for data, reason in (
            (
                report_dict(report_id=7),
                "the report.report-id is a number, not a string",
            ),
            (
                report_dict(policies={}),
                "the report.policies is an object, not an array",
            ),
            (report_dict(policies=[[]]), "policies[0] is an array, not an object"),
            (
                _policy(summary={"total-successful-session-count": "10"}),
                "policies[0].summary.total-successful-session-count is a string,"
                " not an integer",
            ),
            (
                _policy(
                    summary={
                        "total-successful-session-count": True,
                        "total-failure-session-count": 0,
                    }
                ),
                "policies[0].summary.total-successful-session-count is a boolean,"
                " not an integer",
            ),
            (
                _policy(**{"failure-details": 3.5}),
                "policies[0].failure-details is a number, not an array",
            ),
            (
                _policy(
                    policy={
                        "policy-type": "sts",
                        "policy-domain": "example.com",
                        "policy-string": "mode: enforce",
                    }
                ),
                "policies[0].policy.policy-string is a string, not an array",
            ),
            (
                _policy(
                    policy={
                        "policy-type": "sts",
                        "policy-domain": "example.com",
                        "mx-host": ["mx.example.com", 5],
                    }
                ),
                "policies[0].policy.mx-host[1] is a number, not a string",
            ),
            (
                _policy(**{"failure-details": [{**details[0], "receiving-ip": None}]}),
                "policies[0].failure-details[0].receiving-ip is null, not a string",
            ),
        ):
            self.assertEqual(_reason(data), reason)

    def test_bad_values(self) -> None:
        """Negative or absurd counts, an unknown policy type, non-RFC 3339
        times, impossible times and a range that ends before it starts are
        refused (§4.4)."""
        range_of = report_dict()["date-range"]
        for data, reason in (
            (
                _policy(
                    summary={
                        "total-successful-session-count": -1,
                        "total-failure-session-count": 0,
                    }
                ),
                "policies[0].summary.total-successful-session-count is -1, out of"
                f" 0..{MAX_SESSION_COUNT}",
            ),
            (
                _policy(policy={"policy-type": "dane", "policy-domain": "example.com"}),
                "policies[0].policy.policy-type: unknown type 'dane'",
            ),
            (
                report_dict(date_range={**range_of, "start-datetime": "1732838400"}),
                "date-range.start-datetime '1732838400' is not an RFC 3339 date-time",
            ),
            (
                report_dict(date_range={**range_of, "start-datetime": "2024-11-29"}),
                "date-range.start-datetime '2024-11-29' is not an RFC 3339 date-time",
            ),
            (
                report_dict(
                    date_range={**range_of, "end-datetime": "2024-11-29T24:00:00Z"}
                ),
                "date-range.end-datetime '2024-11-29T24:00:00Z' is no such time",
            ),
            (
                report_dict(
                    date_range={
                        "start-datetime": "9999-12-31T23:00:00-05:00",
                        "end-datetime": "9999-12-31T23:59:59Z",
                    }
                ),
                "date-range.start-datetime '9999-12-31T23:00:00-05:00' is no such time",
            ),
            (
                report_dict(
                    date_range={
                        "start-datetime": "2024-11-30T00:00:00Z",
                        "end-datetime": "2024-11-29T00:00:00Z",
                    }
                ),
                "date-range: end-datetime is before start-datetime",
            ),
        ):
            self.assertEqual(_reason(data), reason)


class BoundTests(SynchronousTestCase):
    def test_report_size(self) -> None:
        """JSON over MAX_REPORT_BYTES is refused before it is parsed."""
        self.assertEqual(
            _reason(b" " * (MAX_REPORT_BYTES + 1)),
            f"report over {MAX_REPORT_BYTES} bytes",
        )

    def test_too_many_policies(self) -> None:
        """More than MAX_POLICIES policies are refused."""
        policy = report_dict()["policies"][0]
        self.assertEqual(
            _reason(report_dict(policies=[policy] * (MAX_POLICIES + 1))),
            f"the report.policies has {MAX_POLICIES + 1} elements, more than"
            f" {MAX_POLICIES}",
        )

    def test_too_many_details(self) -> None:
        """More than MAX_DETAILS failure details, counted over every policy,
        are refused before any is read."""
        policy = report_dict()["policies"][0]
        half = MAX_DETAILS // 2 + 1
        policy["failure-details"] = [{}] * half
        self.assertEqual(
            _reason(report_dict(policies=[policy, policy])),
            f"{2 * half} failure-details, more than {MAX_DETAILS}",
        )

    def test_long_strings(self) -> None:
        """A string over MAX_STRING_CHARS, alone or in a list, and a list of
        over MAX_STRINGS strings are refused."""
        long = "x" * (MAX_STRING_CHARS + 1)
        self.assertEqual(
            _reason(report_dict(organization_name=long)),
            f"the report.organization-name is over {MAX_STRING_CHARS} characters",
        )
        self.assertEqual(
            _reason(
                _policy(
                    policy={
                        "policy-type": "sts",
                        "policy-domain": "example.com",
                        "mx-host": long,
                    }
                )
            ),
            f"policies[0].policy.mx-host is over {MAX_STRING_CHARS} characters",
        )
        self.assertEqual(
            _reason(
                _policy(
                    policy={
                        "policy-type": "sts",
                        "policy-domain": "example.com",
                        "policy-string": ["a", long],
                    }
                )
            ),
            f"policies[0].policy.policy-string[1] is over {MAX_STRING_CHARS}"
            " characters",
        )
        self.assertEqual(
            _reason(
                _policy(
                    policy={
                        "policy-type": "sts",
                        "policy-domain": "example.com",
                        "policy-string": ["a"] * (MAX_STRINGS + 1),
                    }
                )
            ),
            f"policies[0].policy.policy-string has {MAX_STRINGS + 1} elements,"
            f" more than {MAX_STRINGS}",
        )

    def test_huge_count(self) -> None:
        """A count past MAX_SESSION_COUNT (what SQLite and a double hold
        exactly) is refused."""
        reason = _reason(
            _policy(
                summary={
                    "total-successful-session-count": MAX_SESSION_COUNT + 1,
                    "total-failure-session-count": 0,
                }
            )
        )
        self.assertIn(f"is {MAX_SESSION_COUNT + 1}, out of", reason)


class StoredFormTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """The stored JSON reads back as the same report, unknown fields
        dropped (what the report store relies on)."""
        for path in (GOOGLE, MICROSOFT):
            report = _parsed(path.read_bytes())
            self.assertEqual(_parsed(encode_report(report)), report)
        stored = report_to_json(_parsed(MICROSOFT.read_bytes()))
        self.assertNotIn("x-sender-extension", stored)

    def test_no_contact(self) -> None:
        """A report without contact-info or failure details is written
        without them, and reads back the same."""
        data = report_dict()
        del data["contact-info"]
        del data["policies"][0]["failure-details"]
        report = _parsed(json.dumps(data).encode())
        stored = report_to_json(report)
        self.assertNotIn("contact-info", stored)
        self.assertEqual(_parsed(encode_report(report)), report)

    def test_rfc3339(self) -> None:
        """Times are written in UTC with a Z, and a fraction only when there
        is one."""
        self.assertEqual(rfc3339(DAY_START), "2024-11-29T00:00:00Z")
        self.assertEqual(rfc3339(DAY_START + 0.5), "2024-11-29T00:00:00.500000Z")


_JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 2**60),
    st.text(max_size=20),
    st.sampled_from(["sts", "no-policy-found", "2024-11-29T00:00:00Z", "example.com"]),
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "organization-name",
                    "date-range",
                    "start-datetime",
                    "end-datetime",
                    "report-id",
                    "policies",
                    "policy",
                    "summary",
                    "policy-type",
                    "policy-domain",
                    "mx-host",
                    "failure-details",
                    "result-type",
                    "failed-session-count",
                    "total-successful-session-count",
                    "total-failure-session-count",
                ]
            ),
            inner,
            max_size=6,
        )
    ),
    max_leaves=30,
)


_BOUNDED = settings(derandomize=True, max_examples=300, deadline=None)


class PropertyTests(SynchronousTestCase):
    @_BOUNDED
    @given(st.binary(max_size=200))
    def test_any_bytes(self, data: bytes) -> None:
        """Arbitrary bytes give a report or a refusal, never an exception."""
        self.assertIsInstance(parse_report(data), TlsReport | ReportRefused)

    @_BOUNDED
    @given(_JSON)
    def test_any_json(self, document: object) -> None:
        """Any JSON built from the report's own field names gives a report
        or a one-line refusal; a report survives the stored form."""
        result = parse_report(json.dumps(document).encode())
        if isinstance(result, ReportRefused):
            self.assertNotIn("\n", result.reason)
        else:
            self.assertEqual(parse_report(encode_report(result)), result)
