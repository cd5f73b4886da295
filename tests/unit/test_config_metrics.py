"""The [metrics] table: off by default, loopback or unix unless
allow_remote (issue 11, point 3; the same exposure rule as F7)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.config import Config, ConfigError, parse_config


def metrics(body: str) -> Config:
    return parse_config("[metrics]\n" + body)


class MetricsConfigTests(SynchronousTestCase):
    def test_off_by_default(self) -> None:
        """No [metrics] table: no endpoint."""
        self.assertEqual(parse_config("").metrics.endpoint, "")
        self.assertEqual(Config().metrics, parse_config("").metrics)

    def test_loopback_and_unix_accepted(self) -> None:
        """Loopback TCP (v4, v6, localhost), unix: and systemd: endpoints."""
        for endpoint in (
            "tcp:9461:interface=127.0.0.1",
            "tcp6:9461:interface=\\\\:\\\\:1",
            "tcp:9461:interface=localhost",
            "unix:/run/postfix-mtasts/metrics.sock",
            "systemd:domain=INET:index=1",
        ):
            config = metrics(f'endpoint = "{endpoint}"')
            self.assertEqual(config.metrics.endpoint, endpoint.replace("\\\\", "\\"))

    def test_remote_refused_unless_allowed(self) -> None:
        """A TCP endpoint on all interfaces or another address is refused
        with the key named; allow_remote = true lets it through."""
        for endpoint in ("tcp:9461", "tcp:9461:interface=192.0.2.1", "tcp6:9461"):
            with self.assertRaises(ConfigError) as caught:
                metrics(f'endpoint = "{endpoint}"')
            self.assertTrue(str(caught.exception).startswith("metrics.endpoint: "))
            self.assertIn("allow_remote", str(caught.exception))
            config = metrics(f'endpoint = "{endpoint}"\nallow_remote = true')
            self.assertTrue(config.metrics.allow_remote)

    def test_bad_values(self) -> None:
        """Not an endpoint, a wrong type, an unknown key: errors naming the key."""
        for body, key in (
            ('endpoint = "http://127.0.0.1:9461"', "metrics.endpoint"),
            ('endpoint = "tcp"', "metrics.endpoint"),
            ("endpoint = 9461", "metrics.endpoint"),
            ('allow_remote = "yes"', "metrics.allow_remote"),
            ("port = 1", "metrics.port"),
        ):
            with self.assertRaises(ConfigError) as caught:
                metrics(body)
            self.assertTrue(str(caught.exception).startswith(key), caught.exception)

    def test_endpoint_grammar_as_for_listeners(self) -> None:
        """A typo'd argument, a port that is not one, an unescaped IPv6
        address: errors naming metrics.endpoint and the argument at load,
        the listeners' grammar, never a traceback at bind (F7)."""
        for endpoint, word in (
            ("tcp:9461:interfac=127.0.0.1", "interfac"),
            ("tcp:94610:interface=127.0.0.1", "port"),
            ("tcp6:9461:interface=::1", "escape each colon"),
        ):
            with self.assertRaises(ConfigError) as caught:
                metrics(f'endpoint = "{endpoint}"\nallow_remote = true')
            message = str(caught.exception)
            self.assertTrue(message.startswith("metrics.endpoint: "), message)
            self.assertIn(word, message)
