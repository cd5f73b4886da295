"""A tlsrpt map end to end through the front door, with the real resolver,
refresh round and domain state over fake DNS and HTTPS and a task.Clock:
what Postfix hears for every MTA-STS outcome, how long it keeps hearing it,
and what is logged (spec B14, B16, B17, D9, D14, E8, G29, G31).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts import fetch_errors
from postfix_mtasts.coordinator import RefreshCoordinator
from postfix_mtasts.core.answer import Answer, PolicyFailure
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import Timing
from postfix_mtasts.core.socketmap import encode_reply
from postfix_mtasts.domains import DomainState
from postfix_mtasts.fetch_errors import FetchError
from postfix_mtasts.frontdoor import FrontDoor
from postfix_mtasts.refresh import RefreshRound
from postfix_mtasts.resolver import PolicyResolver
from postfix_mtasts.txt import TxtFailure, TxtNoRecord

from .test_resolver import FakeFetcher, FakeTxt, records

TIMING = Timing(
    recheck_interval_s=3600, negative_ttl_s=300, failure_backoff_s=300, retry_s=60
)
FETCH = PolicyFailure.FETCH_ERROR
WEBPKI = PolicyFailure.WEBPKI_INVALID

ENFORCE = b"version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n"
TESTING = ENFORCE.replace(b"enforce", b"testing")
NONE = b"version: STSv1\nmode: none\nmax_age: 86400\n"

MAPS = {
    "postfix": MapConfig(),
    "tlsrpt": MapConfig(tlsrpt=True),
    "encrypt": MapConfig(tlsrpt=True, default_level="encrypt"),
}

SECURE = b"OK secure match=mx1.example.com servername=hostname"
SECURE_TLSRPT = (
    SECURE + b" policy_type=sts policy_domain=example.com"
    b" mx_host_pattern=mx1.example.com { policy_string = version: STSv1 }"
    b" { policy_string = mode: enforce } { policy_string = mx: mx1.example.com }"
    b" { policy_string = max_age: 86400 }"
)
TESTING_REPORT = (
    b"OK may servername=hostname policy_type=sts policy_domain=example.com"
    b" mx_host_pattern=mx1.example.com { policy_string = version: STSv1 }"
    b" { policy_string = mode: testing } { policy_string = mx: mx1.example.com }"
    b" { policy_string = max_age: 86400 }"
)


def failure_reply(failure: PolicyFailure, level: str = "may") -> bytes:
    return (
        f"OK {level} policy_type=sts policy_domain=example.com"
        f" policy_failure={failure.value}"
    ).encode()


def make_error(cls: type[FetchError]) -> FetchError:
    """One instance of each FetchError subclass, whatever its constructor."""
    if issubclass(cls, fetch_errors.FetchRedirectError):
        return cls(301, "https://elsewhere.example/")
    if issubclass(cls, fetch_errors.FetchStatusError):
        return cls(500)
    if issubclass(cls, fetch_errors.FetchContentTypeError):
        return cls("text/html")
    if issubclass(cls, fetch_errors.FetchEncodingError):
        return cls("gzip")
    return cls("it failed")


def all_fetch_errors() -> set[type[FetchError]]:
    found: set[type[FetchError]] = {FetchError}
    todo = [FetchError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


# Every typed fetch fault and the RFC 8460 result type a tlsrpt map reports.
ERROR_TYPES: dict[type[FetchError], PolicyFailure] = {
    FetchError: FETCH,
    fetch_errors.FetchConnectError: FETCH,
    fetch_errors.FetchIncompleteError: FETCH,
    fetch_errors.FetchStatusError: FETCH,
    fetch_errors.FetchRedirectError: FETCH,
    fetch_errors.FetchContentTypeError: FETCH,
    fetch_errors.FetchTooLargeError: FETCH,
    fetch_errors.FetchHeadersTooLargeError: FETCH,
    fetch_errors.FetchTimeoutError: FETCH,
    fetch_errors.FetchEncodingError: FETCH,
    fetch_errors.FetchTlsError: WEBPKI,
}


class TlsrptTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.txt = FakeTxt(records(b"v=STSv1; id=id1;"))
        self.fetcher = FakeFetcher(ENFORCE)
        self.domains = DomainState(1000)
        resolver = PolicyResolver(self.txt, self.fetcher)
        refresh = RefreshRound(resolver, self.domains, self.clock, timing=TIMING)
        coordinator = RefreshCoordinator(
            refresh, self.domains, self.clock, max_in_flight=8
        )
        self.door = FrontDoor(
            self.domains,
            coordinator,
            self.clock,
            maps=MAPS.get,
            timing=TIMING,
            budget_s=15.0,
        )

    def answer(self, map_name: str = "tlsrpt") -> Answer:
        result = self.door.lookup(map_name, b"example.com")
        if isinstance(result, Deferred):
            return self.successResultOf(result)
        return result

    def heard(self, map_name: str = "tlsrpt") -> bytes:
        """The reply payload Postfix reads (without netstring framing)."""
        reply = encode_reply(self.answer(map_name))
        return reply.partition(b":")[2][:-1]


class FailureTypeTests(TlsrptTestCase):
    def test_table_covers_every_fetch_error(self) -> None:
        """Each FetchError subclass is classified: a new one must say which
        TLSRPT result type it is (D14, RFC 8460 §4.3)."""
        self.assertEqual(set(ERROR_TYPES), all_fetch_errors())

    def test_each_fetch_error_gives_its_policy_failure(self) -> None:
        """A record exists, nothing is cached and the fetch fails: a tlsrpt
        map answers policy_failure with that error's type, at may, while the
        plain map answers NOTFOUND as before (B16, D14, G29, G31)."""
        for cls, failure in ERROR_TYPES.items():
            self.setUp()
            self.fetcher.body = make_error(cls)
            self.assertEqual(self.heard(), failure_reply(failure), cls)
            self.assertEqual(self.heard("postfix"), b"NOTFOUND ", cls)
            self.assertEqual(self.heard("encrypt"), failure_reply(failure, "encrypt"))

    def test_invalid_policy_is_policy_invalid(self) -> None:
        """A body that does not parse is sts-policy-invalid (C17, D14)."""
        self.fetcher.body = b"version: STSv1\nmode: report\nmax_age: 86400\n"
        self.assertEqual(self.heard(), failure_reply(PolicyFailure.POLICY_INVALID))


class TestingModeTests(TlsrptTestCase):
    def test_testing_reported_not_enforced(self) -> None:
        """testing: report-only at the map's level, no match=; NOTFOUND on a
        plain map (D9, L3, G31)."""
        self.fetcher.body = TESTING
        self.assertEqual(self.heard(), TESTING_REPORT)
        self.assertEqual(self.heard("postfix"), b"NOTFOUND ")
        self.assertEqual(
            self.heard("encrypt"), TESTING_REPORT.replace(b"OK may", b"OK encrypt")
        )

    def test_testing_answer_memoised_per_map(self) -> None:
        """A repeated key is answered from the front door's memo: the very
        same answer object (so its encoded bytes too), per map, with no
        network (hot path, E2)."""
        self.fetcher.body = TESTING
        self.answer()  # discovered: answered when the refresh ends
        first = self.answer()
        self.assertIs(self.answer(), first)
        self.assertIsNot(self.answer("postfix"), first)
        self.assertIs(self.answer("postfix"), self.answer("postfix"))
        self.assertEqual((len(self.txt.names), len(self.fetcher.domains)), (1, 1))

    def test_no_record_and_mode_none_stay_notfound(self) -> None:
        """No _mta-sts record, a DNS failure, or mode none: NOTFOUND on a
        tlsrpt map too; Postfix reports no-policy-found itself (A15, D10)."""
        self.txt.result = TxtNoRecord("NXDOMAIN")
        self.assertEqual(self.heard(), b"NOTFOUND ")
        self.setUp()
        self.txt.result = TxtFailure("SERVFAIL")
        self.assertEqual(self.heard(), b"NOTFOUND ")
        self.setUp()
        self.fetcher.body = NONE
        self.assertEqual(self.heard(), b"NOTFOUND ")


class BackoffTests(TlsrptTestCase):
    def test_backoff_repeats_the_failure(self) -> None:
        """While the failed id backs off (B14), every lookup hears the same
        policy_failure: after the 60 s negative the TXT is asked again, the
        fetch is held back and its type still reported; after the back-off a
        new fetch is made (B14, D14)."""
        self.fetcher.body = make_error(fetch_errors.FetchTlsError)
        expected = failure_reply(WEBPKI)
        self.assertEqual(self.heard(), expected)
        for _ in range(4):  # 4 x 61 s = 244 s < 300 s back-off
            self.clock.advance(61)
            self.assertEqual(self.heard(), expected)
        self.assertEqual(len(self.fetcher.domains), 1)
        self.assertEqual(len(self.txt.names), 5)
        self.clock.advance(61)
        self.fetcher.body = TESTING
        self.assertEqual(self.heard(), TESTING_REPORT)
        self.assertEqual(len(self.fetcher.domains), 2)

    def test_cached_policy_wins_over_failing_refetch(self) -> None:
        """A valid cached policy is served while a new id cannot be fetched:
        its own answer, never policy_failure (B17, E8)."""
        self.assertEqual(self.heard(), SECURE_TLSRPT)
        self.clock.advance(3600)
        self.txt.result = records(b"v=STSv1; id=id2;")
        self.fetcher.body = make_error(fetch_errors.FetchStatusError)
        self.assertEqual(self.heard(), SECURE_TLSRPT)
        self.clock.advance(61)
        self.assertEqual(self.heard(), SECURE_TLSRPT)
        self.assertEqual(self.heard("postfix"), SECURE)

    def test_expired_policy_and_failing_fetch_reports(self) -> None:
        """Past max_age nothing valid is cached: the failure is reported
        (E9, B16, D14)."""
        self.assertEqual(self.heard(), SECURE_TLSRPT)
        self.clock.advance(86400)
        self.fetcher.body = make_error(fetch_errors.FetchTimeoutError)
        self.assertEqual(self.heard(), failure_reply(FETCH))


class LogTests(TlsrptTestCase):
    def test_one_event_when_the_failure_becomes_the_answer(self) -> None:
        """The failure is logged once, naming its policy_failure type, when
        it becomes the answer; lookups answered from it log nothing more
        (style: one event per decision; D14)."""
        self.fetcher.body = make_error(fetch_errors.FetchTlsError)
        with capturedLogs() as events:
            for _ in range(5):
                self.heard()
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["policy_failure"], WEBPKI)
        self.assertIn("policy_failure={policy_failure}", warnings[0]["log_format"])

    def test_failed_refetch_of_valid_policy_names_no_failure(self) -> None:
        """A failed refetch while a valid policy is served is warned about
        (E6) without a policy_failure: that is not the answer (B17)."""
        self.heard()
        self.clock.advance(3600)
        self.txt.result = records(b"v=STSv1; id=id2;")
        self.fetcher.body = make_error(fetch_errors.FetchStatusError)
        with capturedLogs() as events:
            self.heard()
        (warning,) = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertIsNone(warning["policy_failure"])
        self.assertNotIn("policy_failure", warning["log_format"])
