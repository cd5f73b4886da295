# -*- test-case-name: tests.unit.test_cli -*-
"""The ``postfix-mtasts`` command: argument parsing and dispatch."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from postfix_mtasts import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postfix-mtasts",
        description="MTA-STS (RFC 8461) policy daemon for Postfix.",
    )
    parser.add_argument(
        "--version", action="version", version=f"postfix-mtasts {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="answer Postfix TLS policy lookups")
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    query = commands.add_parser("query", help="show what Postfix would be told")
    query.add_argument("domain")
    query.add_argument("--config", metavar="FILE", help="TOML configuration file")
    query.add_argument("--json", action="store_true", help="print JSON")
    check = commands.add_parser("check", help="check a domain's MTA-STS setup")
    check.add_argument("domain")
    check.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    parser.error(f"{args.command}: not implemented yet")
    return 2  # pragma: no cover - parser.error exits
