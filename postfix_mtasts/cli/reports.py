# -*- test-case-name: tests.unit.test_cli_reports,tests.unit.test_cli_verdict -*-
"""``postfix-mtasts reports [PATH...]``: read SMTP TLS reports (RFC 8460)
into the report store, then summarise what is stored.

Each PATH is read (:mod:`postfix_mtasts.reportfiles`); a report already
stored is counted as a duplicate; every item that gives no report is one
``skipped SOURCE: reason`` line on stderr.  The summary goes to stdout: a
table, or with ``--json`` one JSON document; ``--html FILE`` writes it
as one HTML file instead.  Exit status 0 when every item was read, 1 when
one was skipped, 2 for a usage or configuration error (no store, one that
cannot be used, an HTML file that cannot be written).

``--verdict DOMAIN`` judges the stored reports of DOMAIN beside a live
check of it instead of summarising (:mod:`postfix_mtasts.cli.verdict`):
its exit status is the verdict's (0 ready, 1 not ready, 2 usage).
"""

from __future__ import annotations

import argparse
import functools
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from postfix_mtasts.cli import config_path, error_line
from postfix_mtasts.core.config import ConfigError, load
from postfix_mtasts.core.tlsreport import TlsReport
from postfix_mtasts.core.tlsreport_html import render_html
from postfix_mtasts.core.tlsreport_summary import summarize, summary_json
from postfix_mtasts.core.tlsreport_text import render_summary
from postfix_mtasts.reportfiles import read_paths
from postfix_mtasts.reportstore import ReportStore, ReportStoreError, default_store_path

if TYPE_CHECKING:
    from postfix_mtasts.cli.verdict import LiveCheck

__all__ = ["BATCH", "run_reports", "store_path"]

#: Reports stored per transaction while reading.
BATCH = 500

EXIT_OK = 0
EXIT_SKIPPED = 1
EXIT_USAGE = 2


def store_path(args: argparse.Namespace) -> str:
    """``--store``, else the configured ``[reports] store``, else the
    report store beside the configured policy store; ConfigError when none
    names one."""
    if args.store:
        return str(args.store)
    config = load(config_path("reports", args.config))
    path = config.reports.store or default_store_path(config.store.path)
    if path is None:
        raise ConfigError(
            "no report store: name one with --store or [reports] store, or set"
            " [store] path in the configuration (the reports go beside it)"
        )
    return path


def run_reports(args: argparse.Namespace, live: LiveCheck | None = None) -> int:
    """The command; ``live`` replaces the live check of ``--verdict``."""
    if args.html and (args.json or args.verdict):
        error_line("--html goes with neither --json nor --verdict")
        return EXIT_USAGE
    domain = None
    if args.verdict:
        from postfix_mtasts.cli.check import checked_domain, nameservers_to_ask
        from postfix_mtasts.cli.verdict import check_live

        domain = checked_domain(args.verdict)
        nameservers = nameservers_to_ask(args) if domain else None
        if domain is None or nameservers is None:
            return EXIT_USAGE
        live = live or functools.partial(check_live, args, nameservers)
    try:
        path = store_path(args)
        store = ReportStore(path)
    except ConfigError as e:
        error_line(f"configuration error: {e}")
        return EXIT_USAGE
    except (OSError, sqlite3.Error, ReportStoreError) as e:
        error_line(f"cannot use the report store: {e}")
        return EXIT_USAGE
    try:
        skipped = _read(store, args.paths)
        stored = _stored(store, args.since, args.until, skipped)
        if domain is not None and live is not None:
            selected = list(stored)  # read before the live check
        else:  # summarised as they are read
            rows = summarize(
                stored,
                domain=args.domain,
                since=args.since.isoformat() if args.since else None,
                until=args.until.isoformat() if args.until else None,
            )
    finally:
        store.close()
    if domain is not None and live is not None:
        from postfix_mtasts.cli.verdict import verdict

        return verdict(args, domain, selected, live)
    if args.html:
        if not _write_html(args.html, render_html(rows, _selection(args))):
            return EXIT_USAGE
    elif args.json:
        print(json.dumps(summary_json(rows), indent=2))
    else:
        sys.stdout.write(render_summary(rows))
    return EXIT_SKIPPED if skipped else EXIT_OK


def _selection(args: argparse.Namespace) -> str:
    """The filters asked for, in words, for the HTML heading."""
    words = []
    if args.domain:
        words.append(f"policy domain {args.domain}")
    if args.since:
        words.append(f"from {args.since.isoformat()}")
    if args.until:
        words.append(f"up to {args.until.isoformat()}")
    return "Selection: " + ", ".join(words) + "." if words else ""


def _write_html(path: str, document: str) -> bool:
    """Write the document to ``path`` (``-``: stdout); False when it
    cannot be written, with the reason on stderr."""
    if path == "-":
        sys.stdout.write(document)
        return True
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(document)
    except OSError as e:
        error_line(f"cannot write {path}: {e.strerror or e}")
        return False
    print(f"postfix-mtasts: summary written to {path}", file=sys.stderr)
    return True


def _read(store: ReportStore, paths: list[str]) -> list[str]:
    """Read ``paths`` into the store; the sources skipped."""
    if not paths:
        return []
    now = time.time()  # noqa: TID251 - the CLI's own clock, no reactor here
    skipped: list[str] = []
    batch: list[TlsReport] = []
    added = duplicates = 0
    for item in read_paths(paths):
        if isinstance(item.result, TlsReport):
            batch.append(item.result)
        else:
            _skip(skipped, item.source, item.result.reason)
        if len(batch) >= BATCH:
            added, duplicates = _plus((added, duplicates), store.add(batch, now))
            batch.clear()
    added, duplicates = _plus((added, duplicates), store.add(batch, now))
    print(
        f"postfix-mtasts: {added} new report(s) stored, {duplicates} duplicate(s),"
        f" {len(skipped)} skipped",
        file=sys.stderr,
    )
    return skipped


def _plus(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return a[0] + b[0], a[1] + b[1]


def _skip(skipped: list[str], source: str, reason: str) -> None:
    skipped.append(source)
    print(f"skipped {source}: {reason}", file=sys.stderr)


def _stored(
    store: ReportStore, since: date | None, until: date | None, skipped: list[str]
) -> Iterator[TlsReport]:
    """The stored reports of the days asked for; a row that no longer reads
    is skipped like a bad file."""
    for report in store.reports(_midnight(since), _midnight(until, 1)):
        if isinstance(report, TlsReport):
            yield report
        else:
            _skip(skipped, "store", report.reason)


def _midnight(day: date | None, after: int = 0) -> float | None:
    if day is None:
        return None
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(after)
    return moment.timestamp()
