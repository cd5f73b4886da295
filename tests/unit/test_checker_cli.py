"""Tests for the ``check`` subcommand's arguments (spec H, issue 5)."""

from __future__ import annotations

import contextlib
import io

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cli import build_parser, main
from postfix_mtasts.cli.check import parse_nameservers


class CheckArgumentsTests(SynchronousTestCase):
    def test_arguments(self):
        """DOMAIN, --json, --suggest, --smtp-timeout, --ca-file, --nameserver, --ehlo."""
        args = build_parser().parse_args(
            [
                "check",
                "example.com",
                "--json",
                "--suggest",
                "--smtp-timeout",
                "3",
                "--ca-file",
                "/ca.pem",
                "--nameserver",
                "192.0.2.53",
                "--ehlo",
                "me.example",
            ]
        )
        self.assertEqual(
            (args.command, args.domain, args.json, args.suggest, args.smtp_timeout),
            ("check", "example.com", True, True, 3.0),
        )
        self.assertEqual(
            (args.ca_file, args.nameserver, args.ehlo),
            ("/ca.pem", ["192.0.2.53"], "me.example"),
        )
        defaults = build_parser().parse_args(["check", "example.com"])
        self.assertEqual(
            (defaults.json, defaults.suggest, defaults.smtp_timeout),
            (False, False, 20.0),
        )

    def test_bad_timeout(self):
        """--smtp-timeout must be positive."""
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            build_parser().parse_args(["check", "example.com", "--smtp-timeout", "0"])

    def test_nameservers(self):
        """IP, IP:PORT and [IPv6]:PORT; anything else is an error."""
        self.assertEqual(
            parse_nameservers(
                ["192.0.2.53", "192.0.2.54:5353", "2001:db8::53", "[2001:db8::54]:5300"]
            ),
            [
                ("192.0.2.53", 53),
                ("192.0.2.54", 5353),
                ("2001:db8::53", 53),
                ("2001:db8::54", 5300),
            ],
        )
        self.assertEqual(parse_nameservers(None), [])
        for bad in ("ns.example.com", "192.0.2.1:x", "[2001:db8::1"):
            with self.assertRaises(ValueError):
                parse_nameservers([bad])

    def test_not_a_domain(self):
        """A key that is no domain name is a usage error (exit 2), before any network (F8)."""
        for key in ("[192.0.2.1]", "localhost", "192.0.2.1"):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                self.assertEqual(main(["check", key]), 2)
            self.assertIn("is not a domain name", err.getvalue())

    def test_undiscoverable_domain(self):
        """A domain too long for its _mta-sts name is told it can have no
        policy, not that it is no domain (A1), before any network."""
        key = ".".join(["a" * 60] * 4) + ".ab"  # 246 octets
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(main(["check", key]), 2)
        self.assertIn("can publish no MTA-STS policy", err.getvalue())
