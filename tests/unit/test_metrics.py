"""/metrics: the collector over a fake snapshot, parsed back with
prometheus_client's own parser, and the bounded HTTP resource that serves
it (issue 11, point 3)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.tally import Histogram
from postfix_mtasts.metrics import MAX_CONNECTIONS, make_registry, metrics_site
from postfix_mtasts.stats import ListenerState, Snapshot, StoreState

HISTOGRAM = Histogram((0.1, 1.0))
for _seconds in (0.05, 0.5, 0.7, 3.0):
    HISTOGRAM.observe(_seconds)

SNAPSHOT = Snapshot(
    version="9.9",
    started_at=1000.0,
    now=1060.0,
    lookups=(
        (("postfix", "OK", "secure", "hit"), 7),
        (("postfix", "OK", "secure", "miss"), 1),
        (("postfix", "NOTFOUND", "", "none"), 2),
        (("(unknown)", "PERM", "", "none"), 3),
    ),
    policies={"enforce": 4, "testing": 1},
    fetches={"ok": 3, "timeout": 1},
    fetch_seconds=tuple(HISTOGRAM.cumulative()),
    fetch_seconds_sum=HISTOGRAM.sum,
    dns={("txt", "noerror"): 5, ("txt", "timeout"): 1},
    discoveries={"fetched": 3, "no_policy": 2},
    refresh_pending=6,
    stores=(StoreState("sqlite", True, 0), StoreState("redis", False, 12)),
    listeners=(ListenerState("tcp:8461:interface=127.0.0.1", "socketmap", 2),),
    log_events={"warn": 4},
    tls_reports={"stored": 5, "duplicate": 1, "too_large": 2},
)


def scrape(
    snapshot: Snapshot = SNAPSHOT,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the page, keyed by name and sorted labels."""
    from prometheus_client import generate_latest

    text = generate_latest(make_registry(lambda: snapshot)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class CollectorTests(SynchronousTestCase):
    def test_lookups_by_map_and_answer(self) -> None:
        """Lookups are summed over cache use per map, status and level;
        hits and misses are their own counter."""
        samples = scrape()
        lookups = {
            labels: v
            for (n, labels), v in samples.items()
            if n == "postfix_mtasts_lookups_total"
        }
        self.assertEqual(
            lookups,
            {
                (("level", "secure"), ("map", "postfix"), ("status", "OK")): 8,
                (("level", ""), ("map", "postfix"), ("status", "NOTFOUND")): 2,
                (("level", ""), ("map", "(unknown)"), ("status", "PERM")): 3,
            },
        )
        self.assertEqual(
            samples["postfix_mtasts_cache_lookups_total", (("result", "hit"),)], 7
        )
        self.assertEqual(
            samples["postfix_mtasts_cache_lookups_total", (("result", "miss"),)], 1
        )

    def test_gauges_and_counters(self) -> None:
        """Policies by mode (each mode present), fetches, DNS, discoveries,
        backlog, stores, connections, log events, TLS reports received by
        outcome (RFC 8460 §5.3, issue 14), build info, start time."""
        s = scrape()
        expected = {
            ("postfix_mtasts_policies", (("mode", "enforce"),)): 4,
            ("postfix_mtasts_policies", (("mode", "none"),)): 0,
            ("postfix_mtasts_fetches_total", (("result", "timeout"),)): 1,
            (
                "postfix_mtasts_dns_queries_total",
                (("result", "noerror"), ("type", "txt")),
            ): 5,
            ("postfix_mtasts_discoveries_total", (("outcome", "no_policy"),)): 2,
            ("postfix_mtasts_refresh_backlog", ()): 6,
            ("postfix_mtasts_store_up", (("store", "redis"),)): 0,
            ("postfix_mtasts_store_up", (("store", "sqlite"),)): 1,
            ("postfix_mtasts_store_errors_total", (("store", "redis"),)): 12,
            (
                "postfix_mtasts_connections",
                (
                    ("endpoint", "tcp:8461:interface=127.0.0.1"),
                    ("protocol", "socketmap"),
                ),
            ): 2,
            ("postfix_mtasts_log_events_total", (("level", "warn"),)): 4,
            ("postfix_mtasts_log_events_total", (("level", "error"),)): 0,
            ("postfix_mtasts_tls_reports_received_total", (("outcome", "stored"),)): 5,
            (
                "postfix_mtasts_tls_reports_received_total",
                (("outcome", "too_large"),),
            ): 2,
            ("postfix_mtasts_build_info", (("version", "9.9"),)): 1,
            ("postfix_mtasts_start_time_seconds", ()): 1000.0,
        }
        for key, value in expected.items():
            self.assertEqual((key, s.get(key)), (key, value))

    def test_fetch_histogram(self) -> None:
        """The fetch durations come out as a cumulative histogram with +Inf,
        a count and a sum."""
        s = scrape()
        name = "postfix_mtasts_fetch_duration_seconds"
        self.assertEqual(s[f"{name}_bucket", (("le", "0.1"),)], 1)
        self.assertEqual(s[f"{name}_bucket", (("le", "1.0"),)], 3)
        self.assertEqual(s[f"{name}_bucket", (("le", "+Inf"),)], 4)
        self.assertEqual(s[f"{name}_count", ()], 4)
        self.assertAlmostEqual(s[f"{name}_sum", ()], 4.25)

    def test_every_family_has_help(self) -> None:
        """Each postfix_mtasts_* family carries its HELP text."""
        from prometheus_client import generate_latest

        text = generate_latest(make_registry(lambda: SNAPSHOT)).decode()
        families = [
            f
            for f in text_string_to_metric_families(text)
            if f.name.startswith("postfix_mtasts_")
        ]
        self.assertGreaterEqual(len(families), 14)
        for family in families:
            self.assertTrue(family.documentation, family.name)

    def test_read_at_scrape_time(self) -> None:
        """The snapshot is taken per scrape, not once."""
        calls: list[int] = []

        def snapshot() -> Snapshot:
            calls.append(1)
            return SNAPSHOT

        from prometheus_client import generate_latest

        registry = make_registry(snapshot)
        generate_latest(registry)
        generate_latest(registry)
        self.assertEqual(len(calls), 2)


class ResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.site = metrics_site(lambda: SNAPSHOT, self.clock)

    def connect(self) -> tuple[object, StringTransport]:
        proto = self.site.buildProtocol(None)
        assert proto is not None
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def request(self, data: bytes) -> bytes:
        proto, transport = self.connect()
        proto.dataReceived(data)  # type: ignore[attr-defined]
        out: bytes = transport.value()
        return out

    def test_get_metrics(self) -> None:
        """GET /metrics answers 200 with the Prometheus text format."""
        out = self.request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "))
        self.assertIn(b"Content-Type: text/plain; version=0.0.4", head)
        self.assertIn(b"postfix_mtasts_lookups_total", body)

    def test_anything_else_is_404(self) -> None:
        """Another path, a trailing slash, another method: 404, no figures."""
        for line in (
            b"GET / HTTP/1.1",
            b"GET /metrics/ HTTP/1.1",
            b"GET /other HTTP/1.1",
            b"DELETE /metrics HTTP/1.1",
            b"POST /metrics HTTP/1.1",
        ):
            out = self.request(line + b"\r\nHost: x\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 404 "), (line, out[:40]))
            self.assertNotIn(b"postfix_mtasts", out)

    def test_request_with_body_dropped(self) -> None:
        """A request that announces a body is not read: the connection is
        aborted, nothing is answered."""
        proto, transport = self.connect()
        proto.dataReceived(  # type: ignore[attr-defined]
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nxx"
        )
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_headers_bounded(self) -> None:
        """Headers beyond a few kB are refused (400) and the connection closed."""
        out = self.request(
            b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n"
        )
        self.assertTrue(out.startswith(b"HTTP/1.1 4"), out[:40])
        self.assertNotIn(b"postfix_mtasts", out)

    def test_connection_limit(self) -> None:
        """At most MAX_CONNECTIONS at once; a closed one frees its place."""
        protos = [self.connect()[0] for _ in range(MAX_CONNECTIONS)]
        self.assertIsNone(self.site.buildProtocol(None))
        protos[0].connectionLost(None)  # type: ignore[attr-defined]
        self.assertIsNotNone(self.site.buildProtocol(None))

    def test_idle_connection_times_out(self) -> None:
        """A connection that sends nothing is closed after the timeout."""
        _, transport = self.connect()
        self.clock.advance(11)
        self.assertTrue(transport.disconnecting)
