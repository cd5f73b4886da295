# -*- test-case-name: tests.unit.test_cli,tests.unit.test_manpage -*-
"""The ``postfix-mtasts`` command line: every command's arguments.

Only argparse: parsing a command line imports none of the commands, so
``serve`` starts without loading what the admin commands and the checker
need (:func:`postfix_mtasts.cli.main` imports the chosen one alone).
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from postfix_mtasts import __version__

__all__ = [
    "ADMIN_HELP",
    "DEFAULT_MIN_DAYS",
    "DEFAULT_MIN_SENDERS",
    "DEFAULT_SMTP_TIMEOUT_S",
    "INSTALLED_CONFIG",
    "build_parser",
]

#: Where the install puts the configuration; the admin commands (cache,
#: status, query) read it when no --config is given, so they find the
#: running daemon's control socket and store.  ``serve`` never guesses: its
#: unit names the file, and without one it runs on the built-in defaults.
INSTALLED_CONFIG = "/etc/postfix-mtasts/postfix-mtasts.toml"

ADMIN_HELP = f"TOML configuration (default: {INSTALLED_CONFIG} if it exists)"

DEFAULT_SMTP_TIMEOUT_S = 20.0
#: ``reports --verdict``: the guide's two weeks of testing mode, in days.
DEFAULT_MIN_DAYS = 14
#: ``reports --verdict``: reporting organisations needed.
DEFAULT_MIN_SENDERS = 2


def build_parser() -> argparse.ArgumentParser:
    """Every command's arguments (the man page is rendered from them too)."""
    parser = argparse.ArgumentParser(
        prog="postfix-mtasts",
        description="MTA-STS (RFC 8461) policy daemon for Postfix.",
    )
    parser.add_argument(
        "--version", action="version", version=f"postfix-mtasts {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="answer Postfix smtp_tls_policy_maps lookups"
    )
    serve.add_argument(
        "--config", metavar="FILE", help="TOML configuration (default: built-in)"
    )
    query = commands.add_parser(
        "query",
        help="ask the running daemon what Postfix hears for a domain, and why",
    )
    query.add_argument("domain", help="next-hop domain, as Postfix would send it")
    query.add_argument("--config", metavar="FILE", help=ADMIN_HELP)
    query.add_argument(
        "--map", default="postfix", help="map profile to answer for (default: postfix)"
    )
    query.add_argument("--json", action="store_true", help="print one JSON object")
    query.add_argument(
        "--direct",
        action="store_true",
        help="discover the policy in this process, without the daemon or its cache",
    )
    query.add_argument(
        "--socket", metavar="PATH", help="control socket (default: from the config)"
    )
    _add_cache_parser(commands)
    _add_check_parser(commands)
    _add_status_parser(commands)
    _add_reports_parser(commands)
    return parser


def _add_cache_parser(commands: Any) -> None:
    cache = commands.add_parser(
        "cache", help="inspect and manage the running daemon's cache"
    )
    cache.add_argument("--config", metavar="FILE", help=ADMIN_HELP)
    cache.add_argument(
        "--socket", metavar="PATH", help="control socket (default: from the config)"
    )
    cache.add_argument(
        "--offline",
        action="store_true",
        help="work on the store file directly, for a daemon that is stopped "
        "(refused while any process has the file open)",
    )
    verbs = cache.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="one line per cached domain")
    listing.add_argument("--json", action="store_true", help="print JSON")
    for verb, text in (
        ("show", "the whole cached policy of a domain"),
        ("purge", "forget a domain (here and in the stores); it is discovered again"),
        ("refresh", "fetch a domain's policy now"),
    ):
        verbs.add_parser(verb, help=text).add_argument("domain")
    export = verbs.add_parser("export", help="every entry as JSON lines")
    export.add_argument(
        "file", nargs="?", default="-", help="output file (default: stdout)"
    )
    imports = verbs.add_parser("import", help="load entries written by export")
    imports.add_argument("file", help="input file ('-' for stdin)")


def _add_status_parser(commands: Any) -> None:
    status = commands.add_parser(
        "status", help="the running daemon's uptime, counts and last errors"
    )
    status.add_argument("--config", metavar="FILE", help=ADMIN_HELP)
    status.add_argument(
        "--socket", metavar="PATH", help="control socket (default: from the config)"
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")


def _add_check_parser(commands: Any) -> None:
    """The ``check`` subcommand's arguments."""
    check = commands.add_parser(
        "check",
        help="check a domain's MTA-STS setup as a domain owner (DNS, policy, MX hosts)",
    )
    check.add_argument("domain", help="the mail domain to check (e.g. example.com)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument(
        "--suggest",
        action="store_true",
        help="also print a policy file and DNS records for the current MX hosts",
    )
    _add_live_check_options(check)
    check.add_argument(
        "--ehlo",
        metavar="NAME",
        help="name to send in EHLO (default: this host's name)",
    )


def _add_live_check_options(parser: argparse.ArgumentParser) -> None:
    """The options of a live check of a domain (``check``, ``reports
    --verdict``): how to reach its MX hosts, policy host and DNS."""
    parser.add_argument(
        "--smtp-timeout",
        type=_positive,
        default=DEFAULT_SMTP_TIMEOUT_S,
        metavar="S",
        help=f"seconds per SMTP session with an MX host (default {DEFAULT_SMTP_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help="trust these PEM CA certificates instead of the system store",
    )
    parser.add_argument(
        "--nameserver",
        action="append",
        metavar="IP[:PORT]",
        help="DNS server to ask: IP, IP:PORT or [IP]:PORT "
        "(repeatable; default: /etc/resolv.conf)",
    )


def _add_reports_parser(commands: Any) -> None:
    """The ``reports`` subcommand's arguments (RFC 8460 reports)."""
    reports = commands.add_parser(
        "reports",
        help="read SMTP TLS reports (RFC 8460) into the report store and "
        "summarise them per day and sender",
    )
    reports.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="report files (.json, .json.gz), mail messages, mbox files or "
        "maildirs to read first (none: show what is stored)",
    )
    reports.add_argument("--config", metavar="FILE", help=ADMIN_HELP)
    reports.add_argument(
        "--store",
        metavar="FILE",
        help="the report store (default: [reports] store, else tlsrpt.sqlite3 "
        "beside the [store] path of the configuration)",
    )
    reports.add_argument("--json", action="store_true", help="print one JSON object")
    reports.add_argument(
        "--html",
        metavar="FILE",
        help="write the summary as one self-contained HTML file with a per-day "
        "chart, instead of printing it ('-' for stdout)",
    )
    reports.add_argument(
        "--domain", metavar="DOMAIN", help="only the policies of this policy domain"
    )
    reports.add_argument(
        "--since",
        type=_day,
        metavar="YYYY-MM-DD",
        help="only reports from this UTC day on",
    )
    reports.add_argument(
        "--until",
        type=_day,
        metavar="YYYY-MM-DD",
        help="only reports up to this UTC day, included",
    )
    reports.add_argument(
        "--verdict",
        metavar="DOMAIN",
        help="say whether DOMAIN is ready for mode enforce, from its stored "
        "reports and a live check, or what to fix first (exit 0 ready, 1 not)",
    )
    reports.add_argument(
        "--min-days",
        type=_count,
        default=DEFAULT_MIN_DAYS,
        metavar="N",
        help="--verdict: days of reports needed, and the days whose failures "
        f"count (default {DEFAULT_MIN_DAYS}: the guide's two weeks of testing)",
    )
    reports.add_argument(
        "--min-senders",
        type=_count,
        default=DEFAULT_MIN_SENDERS,
        metavar="N",
        help="--verdict: distinct reporting organisations needed "
        f"(default {DEFAULT_MIN_SENDERS})",
    )
    _add_live_check_options(reports)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a date, YYYY-MM-DD") from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("must be a whole number, 1 or more")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value
