"""Tests for postfix_mtasts.core.redis_url: the ``[redis] url`` read at
config load (issue 11: malformed Redis URLs were tracebacks at start)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.config import ConfigError, parse_config
from postfix_mtasts.core.redis_url import RedisAddress, RedisUrlError, parse_redis_url


class RedisUrlTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """Both documented forms, with their defaults (localhost, 6379, db
        0, no password) and a percent-encoded password."""
        cases = {
            "redis://": RedisAddress("localhost", 6379, "", 0, None, "localhost:6379"),
            "redis://10.0.0.5:6380/3": RedisAddress(
                "10.0.0.5", 6380, "", 3, None, "10.0.0.5:6380"
            ),
            "redis://:s%40cret@cache.example/": RedisAddress(
                "cache.example", 6379, "", 0, "s@cret", "cache.example:6379"
            ),
            "redis://[::1]:7000": RedisAddress("::1", 7000, "", 0, None, "::1:7000"),
            "unix:///run/redis/redis.sock?db=2": RedisAddress(
                "", 0, "/run/redis/redis.sock", 2, None, "/run/redis/redis.sock"
            ),
        }
        for url, expected in cases.items():
            self.assertEqual(parse_redis_url(url), expected, url)

    def test_bad_urls(self) -> None:
        """Each malformed URL is a RedisUrlError saying what is wrong."""
        cases = {
            "redis://:notaport": "Port could not be cast",
            "redis://host:99999": "Port out of range",
            "redis://host:0": "port: expected a number from 1 to 65535",
            "rediss:/x": "expected redis://",
            "rediss://host": "expected redis://",
            "http://x": "expected redis://",
            "redis:/host": "expected redis://",
            "redis://localhost/x": "the database must be a number: 'x'",
            "redis://localhost/1/2": "the database must be a number",
            "redis://localhost?db=1": "no ?query allowed",
            "redis://user:pw@host": "only a password may be given",
            "redis://ho_st": "not a host name or IP address",
            "redis://host#x": "no #fragment",
            "unix://": "expected redis://",
            "unix:///": "expected redis://",
            "unix:///x.sock?timeout=1": "takes one ?db=N and nothing else",
            "unix:///x.sock?db=a": "the database must be a number",
        }
        for url, message in cases.items():
            with self.assertRaises(RedisUrlError, msg=url) as caught:
                parse_redis_url(url)
            self.assertIn(message, str(caught.exception), url)

    def test_config_names_the_key(self) -> None:
        """A bad URL stops the configuration with ``redis.url:`` first."""
        error = self.assertRaises(
            ConfigError, parse_config, '[redis]\nurl = "redis://:notaport"\n'
        )
        self.assertTrue(str(error).startswith("redis.url: "), str(error))
        self.assertIn('in "redis://:notaport"', str(error))
        self.assertEqual(parse_config('[redis]\nurl = ""\n').redis.url, "")
