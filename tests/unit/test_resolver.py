"""One round of discovery with fake DNS and HTTPS (spec A1, A5, A7, A16, B14, C17)."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import PolicyFailure
from postfix_mtasts.core.decision import (
    BackedOff,
    DnsFailed,
    Fetched,
    FetchFailed,
    NoPolicy,
    Outcome,
    Unchanged,
)
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.fetch_errors import FetchError, FetchStatusError
from postfix_mtasts.resolver import PolicyResolver
from postfix_mtasts.txt import TxtFailure, TxtNoRecord, TxtRecords, TxtResult

POLICY = b"version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n"


class FakeTxt:
    def __init__(self, result: TxtResult) -> None:
        self.result = result
        self.names: list[str] = []

    def lookup_txt(self, name: str) -> Deferred[TxtResult]:
        self.names.append(name)
        return succeed(self.result)


class FakeFetcher:
    def __init__(self, body: bytes | FetchError = POLICY) -> None:
        self.body = body
        self.domains: list[str] = []

    def fetch(self, domain: str) -> Deferred[bytes]:
        self.domains.append(domain)
        if isinstance(self.body, FetchError):
            return fail(self.body)
        return succeed(self.body)


def records(*texts: bytes) -> TxtRecords:
    return TxtRecords(records=tuple((t,) for t in texts), cname_chain=())


class ResolverTests(SynchronousTestCase):
    def resolve(
        self,
        txt: TxtResult,
        fetcher: FakeFetcher | None = None,
        known_id: str | None = None,
        held_back: PolicyFailure | None = None,
        domain: str = "example.com",
    ) -> tuple[Outcome, FakeTxt, FakeFetcher]:
        fake_txt = FakeTxt(txt)
        fake_fetcher = fetcher or FakeFetcher()
        resolver = PolicyResolver(fake_txt, fake_fetcher)
        d = resolver.resolve(domain, known_id, lambda _: held_back)
        return self.successResultOf(d), fake_txt, fake_fetcher

    def test_fetches_new_policy(self) -> None:
        """A valid record with a new id fetches and parses the policy (A1, B1)."""
        outcome, txt, fetcher = self.resolve(records(b"v=STSv1; id=abc;"))
        self.assertEqual(txt.names, ["_mta-sts.example.com"])
        self.assertEqual(fetcher.domains, ["example.com"])
        assert isinstance(outcome, Fetched)
        self.assertEqual(
            (outcome.policy_id, outcome.policy.mode), ("abc", Mode.ENFORCE)
        )

    def test_same_id_no_fetch(self) -> None:
        """The cached id equals the record's: no HTTPS (E3)."""
        outcome, _, fetcher = self.resolve(records(b"v=STSv1; id=abc;"), known_id="abc")
        self.assertEqual(outcome, Unchanged("abc"))
        self.assertEqual(fetcher.domains, [])

    def test_id_compare_is_case_sensitive(self) -> None:
        """Ids compare exactly: ABC differs from abc (A5)."""
        outcome, _, _ = self.resolve(records(b"v=STSv1; id=ABC;"), known_id="abc")
        self.assertIsInstance(outcome, Fetched)

    def test_backed_off(self) -> None:
        """A backed-off id is not fetched, and the failure it backs off from
        comes with it, to be reported meanwhile (B14, D14)."""
        outcome, _, fetcher = self.resolve(
            records(b"v=STSv1; id=abc;"), held_back=PolicyFailure.WEBPKI_INVALID
        )
        self.assertEqual(outcome, BackedOff("abc", PolicyFailure.WEBPKI_INVALID))
        self.assertEqual(fetcher.domains, [])

    def test_two_records_no_policy(self) -> None:
        """Two v=STSv1 records mean no policy, and nothing is fetched (A7)."""
        outcome, _, fetcher = self.resolve(
            records(b"v=STSv1; id=a;", b"v=STSv1; id=b;")
        )
        self.assertIsInstance(outcome, NoPolicy)
        self.assertEqual(fetcher.domains, [])

    def test_no_record(self) -> None:
        """NXDOMAIN/NODATA → no policy (A15)."""
        outcome, _, _ = self.resolve(TxtNoRecord("NXDOMAIN"))
        self.assertEqual(outcome, NoPolicy("NXDOMAIN"))

    def test_dns_failure(self) -> None:
        """SERVFAIL/timeout → DnsFailed, told apart from no record (A15)."""
        outcome, _, _ = self.resolve(TxtFailure("SERVFAIL"))
        self.assertEqual(outcome, DnsFailed("SERVFAIL"))

    def test_fetch_error(self) -> None:
        """An HTTPS failure becomes FetchFailed with its TLSRPT type (B7, D14)."""
        error = FetchStatusError(404)
        outcome, _, _ = self.resolve(records(b"v=STSv1; id=abc;"), FakeFetcher(error))
        assert isinstance(outcome, FetchFailed)
        self.assertEqual(
            (outcome.policy_id, outcome.report_type), ("abc", error.report_type)
        )

    def test_invalid_policy_is_fetch_failure(self) -> None:
        """An invalid policy body counts as a fetch failure, sts-policy-invalid (C17)."""
        fetcher = FakeFetcher(b"version: STSv1\nmode: enforce\nmax_age: 86400\n")
        outcome, _, _ = self.resolve(records(b"v=STSv1; id=abc;"), fetcher)
        assert isinstance(outcome, FetchFailed)
        self.assertIs(outcome.report_type, PolicyFailure.POLICY_INVALID)
        self.assertIn("C11", outcome.reason)

    def test_name_too_long_for_dns_is_no_policy(self) -> None:
        """A domain whose ``_mta-sts.`` name would pass 253 octets has no
        policy, without a DNS query: never a DNS failure (A1, A15); 244
        octets are still asked."""
        fits = ("x" * 63 + ".") * 3 + "x" * 44 + ".example"
        self.assertEqual(len(fits), 244)
        outcome, txt, _ = self.resolve(TxtFailure("x"), domain="y" + fits)
        assert isinstance(outcome, NoPolicy)
        self.assertIn("A1", outcome.reason)
        self.assertEqual(txt.names, [])
        outcome, txt, _ = self.resolve(TxtFailure("SERVFAIL"), domain=fits)
        self.assertEqual((outcome, len(txt.names[0])), (DnsFailed("SERVFAIL"), 253))
