# -*- test-case-name: tests.unit.test_cli_verdict -*-
"""``postfix-mtasts reports --verdict DOMAIN``: is DOMAIN ready for
``mode: enforce``?

The stored TLS reports (RFC 8460) of the domain beside a live check of it,
made by the same code as ``postfix-mtasts check`` (:func:`~postfix_mtasts.
cli.check.gather_facts`: DNS, the policy host, every MX host), judged by
:func:`~postfix_mtasts.checker.readiness.judge`.  Exit status 0 when
ready (or already enforcing with nothing to fix), 1 when something is to
be fixed first, 2 for a usage error.

The live check is a seam: :func:`verdict` takes any :data:`LiveCheck`
(the unit tests pass facts they built), :func:`check_live` is the real one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from postfix_mtasts.checker.facts import Facts
from postfix_mtasts.checker.readiness import judge
from postfix_mtasts.checker.readiness_report import (
    exit_status,
    readiness_json,
    render_readiness,
)
from postfix_mtasts.checker.rules import evaluate, published_policy
from postfix_mtasts.core.tlsreport import TlsReport

__all__ = ["LiveCheck", "check_live", "verdict"]

#: A live check: (A-label domain, domain as typed) -> the facts observed
#: and the time they were observed at.
LiveCheck = Callable[[str, str], tuple[Facts, float]]


def check_live(
    args: argparse.Namespace,
    nameservers: list[tuple[str, int]],
    domain: str,
    input_domain: str,
) -> tuple[Facts, float]:
    """Observe ``domain`` as ``check`` does, in a reactor of its own."""
    from twisted.internet import task
    from twisted.internet.defer import Deferred

    from postfix_mtasts.cli.check import gather_facts

    observed: list[tuple[Facts, float]] = []

    async def main(reactor: Any) -> None:
        facts = await gather_facts(reactor, args, nameservers, domain, input_domain)
        observed.append((facts, reactor.seconds()))

    try:
        task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
    except SystemExit:  # react always leaves this way
        if not observed:
            raise
    return observed[0]


def verdict(
    args: argparse.Namespace,
    domain: str,
    reports: Iterable[TlsReport],
    live: LiveCheck,
) -> int:
    """Check ``domain`` live, judge it with ``reports``, print the verdict
    (text or ``--json``); the exit status."""
    facts, now = live(domain, args.verdict)
    report = evaluate(facts, now)
    readiness = judge(
        report,
        published_policy(facts),
        reports,
        min_days=args.min_days,
        min_senders=args.min_senders,
    )
    if args.json:
        print(json.dumps(readiness_json(readiness), indent=2))
    else:
        sys.stdout.write(render_readiness(readiness))
    return exit_status(readiness)
