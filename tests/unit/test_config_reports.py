"""The [reports] table: the report store, and the HTTPS receiver (RFC 8460
§3, §5.3; issue 14), off by default; every bound it keeps on a sender
checked at load, with the key named."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.config import Config, ConfigError, parse_config
from postfix_mtasts.core.config_reports import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_REPORT_PATH,
)

STORE = '[store]\npath = "/var/lib/postfix-mtasts/policies.sqlite3"\n'
KEY = "/etc/postfix-mtasts/tlsrpt.pem"


def reports(body: str, store: str = STORE) -> Config:
    return parse_config(store + "[reports]\n" + body)


class ReportsConfigTests(SynchronousTestCase):
    def test_off_by_default(self) -> None:
        """No [reports] table: no receiver, the store beside [store] path,
        the default path and caps."""
        config = parse_config("")
        self.assertEqual(config.reports.endpoint, "")
        self.assertEqual(config.reports.store, "")
        self.assertEqual(config.reports.path, DEFAULT_REPORT_PATH)
        self.assertEqual(config.reports.max_body_bytes, DEFAULT_MAX_BODY_BYTES)
        self.assertEqual(Config().reports, config.reports)

    def test_endpoints(self) -> None:
        """ssl: (with absolute key and certificate paths), and tcp:,
        tcp6:, unix:, systemd: behind a TLS proxy; none warns on loopback."""
        for endpoint in (
            f"ssl:8443:privateKey={KEY}",
            f"ssl:port=443:privateKey={KEY}:certKey={KEY}:interface=192.0.2.1",
            "tcp:8080:interface=127.0.0.1",
            "tcp6:8080:interface=\\\\:\\\\:1",
            "unix:/run/postfix-mtasts/tlsrpt.sock",
            "systemd:domain=INET:name=tlsrpt",
        ):
            config = reports(f'endpoint = "{endpoint}"')
            self.assertEqual(config.reports.endpoint, endpoint.replace("\\\\", "\\"))
            self.assertEqual(config.warnings, ())

    def test_plain_tcp_beyond_loopback_warns(self) -> None:
        """Senders POST to https: URIs only (RFC 8460 §3): a plain TCP
        receiver on another address is accepted with a warning naming the
        key, for the TLS proxy it needs in front."""
        for endpoint in ("tcp:8080", "tcp:8080:interface=192.0.2.1"):
            [warning] = reports(f'endpoint = "{endpoint}"').warnings
            self.assertTrue(warning.startswith("reports.endpoint: "), warning)
            self.assertIn("RFC 8460 §3", warning)

    def test_bad_endpoints(self) -> None:
        """Another scheme, a relative key path, a typo'd argument, a bad
        port, no key at all: errors naming reports.endpoint at load."""
        for endpoint, word in (
            ("https://0.0.0.0:443", "expected a string starting with ssl:"),
            ("ssl:8443:privateKey=key.pem", "privateKey: expected an absolute path"),
            (f"ssl:8443:privateKey={KEY}:certKey=c.pem", "certKey: expected an"),
            (f"ssl:8443:privateKey={KEY}:sslmethod=TLS-1", "sslmethod: expected"),
            (f"ssl:8443:privatekey={KEY}", "unknown argument 'privatekey'"),
            (f"ssl:84430:privateKey={KEY}", "port: expected a number"),
            ("ssl:8443", "ssl: missing privateKey"),
            ("tcp", "expected a string starting with ssl:"),
        ):
            with self.assertRaises(ConfigError) as caught:
                reports(f'endpoint = "{endpoint}"')
            message = str(caught.exception)
            self.assertTrue(message.startswith("reports.endpoint: "), message)
            self.assertIn(word, message)

    def test_store_needed_with_a_receiver(self) -> None:
        """A receiver needs somewhere to store: [reports] store, or a
        [store] path to put it beside; neither is an error naming
        reports.store."""
        endpoint = 'endpoint = "tcp:8080:interface=127.0.0.1"\n'
        with self.assertRaises(ConfigError) as caught:
            reports(endpoint, store="")
        self.assertTrue(str(caught.exception).startswith("reports.store: "))
        config = reports(endpoint + 'store = "/srv/tlsrpt.sqlite3"', store="")
        self.assertEqual(config.reports.store, "/srv/tlsrpt.sqlite3")

    def test_bad_values(self) -> None:
        """Paths that are no URL path, sizes, connections and timeouts out
        of bounds, unknown keys: errors naming the key."""
        for body, key in (
            ('path = "tlsrpt"', "reports.path"),
            ('path = "/tlsrpt?x=1"', "reports.path"),
            ('path = "//tlsrpt"', "reports.path"),
            ('path = "/a b"', "reports.path"),
            ("max_body_bytes = 0", "reports.max_body_bytes"),
            ("max_body_bytes = 1073741824", "reports.max_body_bytes"),
            ("max_connections = 0", "reports.max_connections"),
            ("timeout = 0", "reports.timeout"),
            ("timeout = 3600", "reports.timeout"),
            ("port = 1", "reports.port"),
        ):
            with self.assertRaises(ConfigError) as caught:
                reports(body)
            self.assertTrue(str(caught.exception).startswith(key), caught.exception)
        config = reports('path = "/.well-known/tlsrpt"\ntimeout = 5')
        self.assertEqual(config.reports.path, "/.well-known/tlsrpt")
        self.assertEqual(config.reports.timeout_s, 5.0)
