"""Tests for postfix_mtasts.core.nameserver: one ``ip[:port]`` grammar for
``[dns] nameservers`` and ``check --nameserver``."""

from __future__ import annotations

import contextlib
import io

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cli import main
from postfix_mtasts.cli.check import parse_nameservers
from postfix_mtasts.core.config import ConfigError, parse_config
from postfix_mtasts.core.nameserver import NameserverError, parse_nameserver

#: Text -> (address, port): every documented form, addresses normalised.
ACCEPTED = {
    "192.0.2.53": ("192.0.2.53", 53),
    "192.0.2.54:5353": ("192.0.2.54", 5353),
    "192.0.2.55:1": ("192.0.2.55", 1),
    "192.0.2.56:65535": ("192.0.2.56", 65535),
    "192.0.2.57:0053": ("192.0.2.57", 53),
    "2001:DB8::53": ("2001:db8::53", 53),
    "::1": ("::1", 53),
    "[2001:db8::54]": ("2001:db8::54", 53),
    "[2001:db8::55]:5300": ("2001:db8::55", 5300),
    "[192.0.2.58]": ("192.0.2.58", 53),
    "[192.0.2.59]:53": ("192.0.2.59", 53),
}

REJECTED = (
    "",
    "ns1.example",
    "ns1.example:53",
    "[ns1.example]:53",
    "192.0.2.1:0",
    "192.0.2.1:65536",
    "192.0.2.1:123456",
    "192.0.2.1:",
    "192.0.2.1:x",
    "192.0.2.1: 53",
    "192.0.2.1:+53",
    "192.0.2.1:5_3",
    "192.0.2.1:\u0665\u0663",  # Arabic-Indic digits "53"
    " 192.0.2.1",
    "192.0.2.1 ",
    "192.0.2.256",
    "192.0.2.1:53:53",
    "[2001:db8::1",
    "[2001:db8::1]53",
    "[2001:db8::1]:",
    "[2001:db8::1]:0",
    "2001:db8::1]:53",
    "[]:53",
    "[[::1]]",
)


def _from_config(text: str) -> tuple[str, int]:
    (server,) = parse_config(f"[dns]\nnameservers = [{text!r}]\n").dns.nameservers
    return server


def _from_check(text: str) -> tuple[str, int]:
    (server,) = parse_nameservers([text])
    return server


class GrammarTests(SynchronousTestCase):
    def test_accepted(self) -> None:
        """Every documented form parses; the port defaults to 53 (A1)."""
        for text, expected in ACCEPTED.items():
            self.assertEqual(parse_nameserver(text), expected, text)

    def test_rejected(self) -> None:
        """Host names, bad ports, loose white space and junk are refused
        with what is expected, and the text kept for the message."""
        for text in REJECTED:
            error = self.assertRaises(NameserverError, parse_nameserver, text)
            self.assertEqual(error.text, text)
            self.assertEqual(
                str(error), 'expected an IP address, "ip:port" or "[ip]:port"'
            )


class SameGrammarTests(SynchronousTestCase):
    def test_both_callers_accept_the_same(self) -> None:
        """``[dns] nameservers`` and ``check --nameserver`` accept the same
        strings as the same servers ("[192.0.2.1]:53" used to pass only the
        latter)."""
        for text, expected in ACCEPTED.items():
            self.assertEqual(_from_config(text), expected, text)
            self.assertEqual(_from_check(text), expected, text)

    def test_both_callers_reject_the_same(self) -> None:
        """Both refuse the same strings ("192.0.2.1: 53" used to pass
        ``--nameserver``): config with a ConfigError naming the entry,
        check with the grammar's error."""
        for text in REJECTED:
            error = self.assertRaises(ConfigError, _from_config, text)
            self.assertTrue(str(error).startswith("dns.nameservers[0]: "), text)
            self.assertRaises(NameserverError, _from_check, text)

    def test_check_usage_error(self) -> None:
        """A bad --nameserver is a usage error (exit 2) quoting the value."""
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = main(["check", "example.com", "--nameserver", "ns1.example"])
        self.assertEqual(status, 2)
        self.assertEqual(
            err.getvalue(),
            'postfix-mtasts: --nameserver: expected an IP address, "ip:port" or '
            "\"[ip]:port\", got 'ns1.example'\n",
        )
