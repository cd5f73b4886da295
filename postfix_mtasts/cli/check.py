# -*- test-case-name: tests.integration.test_checker -*-
"""``postfix-mtasts check DOMAIN``: the domain owner's checker (spec H).

Builds the checker's parts (the daemon's DNS client and HTTPS fetcher, the
TLS prober), gathers the facts, judges them and prints one line per check
(or ``--json``, docs/checker.md).  Exit status 0 when nothing FAILs, 1 when
something does, 2 for a usage error, 3 when the domain could not be checked
(no DNS lookup that decides MTA-STS was answered).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import TYPE_CHECKING, Any

from postfix_mtasts.checker.report import EXIT_USAGE
from postfix_mtasts.core.nameserver import NameserverError, parse_nameserver
from postfix_mtasts.core.text import quote

if TYPE_CHECKING:
    from postfix_mtasts.checker.facts import Facts

__all__ = [
    "checked_domain",
    "gather_facts",
    "nameservers_to_ask",
    "parse_nameservers",
    "run_check",
]

HTTPS_TIMEOUT_S = 20.0


def parse_nameservers(values: list[str] | None) -> list[tuple[str, int]]:
    """``--nameserver`` values as (address, port) pairs, in the grammar of
    :mod:`postfix_mtasts.core.nameserver` (as ``[dns] nameservers``);
    :class:`~postfix_mtasts.core.nameserver.NameserverError` for any other."""
    return [parse_nameserver(value) for value in values or ()]


def checked_domain(text: str) -> str | None:
    """The A-label domain ``check`` (and ``reports --verdict``) can look
    at, or None after one line on stderr saying why not (a usage error)."""
    from postfix_mtasts.core.nexthop import KeyKind, classify_key

    hop = classify_key(text.encode("utf-8"))
    if hop.kind is KeyKind.UNDISCOVERABLE:
        print(
            f"postfix-mtasts: {quote(text)} can publish no MTA-STS policy"
            f" ({hop.reason})",
            file=sys.stderr,
        )
        return None
    if hop.kind is not KeyKind.DOMAIN:
        print(
            f"postfix-mtasts: {quote(text)} is not a domain name ({hop.reason})",
            file=sys.stderr,
        )
        return None
    return hop.domain


def nameservers_to_ask(args: argparse.Namespace) -> list[tuple[str, int]] | None:
    """``--nameserver``, else /etc/resolv.conf's; None after one line on
    stderr for a value that is no nameserver (a usage error)."""
    from postfix_mtasts.dnsclient import system_nameservers

    try:
        return parse_nameservers(args.nameserver) or system_nameservers()
    except NameserverError as e:
        print(
            f"postfix-mtasts: --nameserver: {e}, got {quote(e.text)}", file=sys.stderr
        )
        return None


async def gather_facts(
    reactor: Any,
    args: argparse.Namespace,
    nameservers: list[tuple[str, int]],
    domain: str,
    input_domain: str,
) -> Facts:
    """Everything the checker observes about ``domain``: the daemon's DNS
    client and HTTPS fetcher, the TLS prober, with the options in ``args``
    (``--smtp-timeout``, ``--ca-file``, ``--ehlo``)."""
    from postfix_mtasts.checker.gather import Gatherer
    from postfix_mtasts.checker.probe import Prober
    from postfix_mtasts.dnsclient import DnsClient
    from postfix_mtasts.fetch import HttpsPolicyFetcher
    from postfix_mtasts.hostnames import DnsHostnameResolver
    from postfix_mtasts.https import make_https_client
    from postfix_mtasts.udpsocket import open_udp_socket

    ehlo = getattr(args, "ehlo", None) or socket.gethostname() or "localhost"
    dns_client = DnsClient(reactor, nameservers, udp=open_udp_socket(reactor))
    client = make_https_client(reactor, ca_file=args.ca_file)
    fetcher = HttpsPolicyFetcher(
        client, reactor, timeout_s=HTTPS_TIMEOUT_S, check_media_type=False
    )
    gatherer = Gatherer(
        reactor,
        dns_client,
        fetcher,
        Prober(
            reactor,
            timeout_s=args.smtp_timeout,
            ca_file=args.ca_file,
            ehlo_name=ehlo,
        ),
        Prober(reactor, timeout_s=HTTPS_TIMEOUT_S, ca_file=args.ca_file),
    )
    reactor.installNameResolver(DnsHostnameResolver(dns_client, reactor))
    return await gatherer.gather(domain, input_domain)


def run_check(args: argparse.Namespace) -> int:
    """Run the check; returns 2 for a bad domain, otherwise exits via react
    with :func:`~postfix_mtasts.checker.report.exit_status` (0, 1 or 3)."""
    from twisted.internet import task
    from twisted.internet.defer import Deferred

    from postfix_mtasts.checker.report import exit_status, render_text, to_json
    from postfix_mtasts.checker.rules import evaluate, suggestion

    domain = checked_domain(args.domain)
    if domain is None:
        return EXIT_USAGE
    nameservers = nameservers_to_ask(args)
    if nameservers is None:
        return EXIT_USAGE

    async def main(reactor: Any) -> None:
        facts = await gather_facts(reactor, args, nameservers, domain, args.domain)
        now = reactor.seconds()
        report = evaluate(facts, now)
        suggested = suggestion(facts, now) if args.suggest else None
        if args.json:
            print(json.dumps(to_json(report, suggested), indent=2))
        else:
            sys.stdout.write(render_text(report, suggested))
        raise SystemExit(exit_status(report))  # react exits with this code

    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
