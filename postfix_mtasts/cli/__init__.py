# -*- test-case-name: tests.unit.test_cli -*-
"""The ``postfix-mtasts`` command: argument parsing and dispatch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from postfix_mtasts import __version__
from postfix_mtasts.core.config import ConfigError, load

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
    query.add_argument("--config", metavar="FILE", help="TOML configuration")
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
    from postfix_mtasts.cli.cache import add_cache_parser
    from postfix_mtasts.cli.check import add_check_parser

    add_cache_parser(commands)
    add_check_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "check":  # needs no configuration
        from postfix_mtasts.cli.check import run_check

        return run_check(args)
    try:
        config = load(args.config)
    except ConfigError as e:
        print(f"postfix-mtasts: configuration error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"postfix-mtasts: cannot read configuration: {e}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from postfix_mtasts.cli.serve import run_serve

        return run_serve(config)
    if args.command == "cache":
        from postfix_mtasts.cli.cache import run_cache

        return run_cache(config, args)
    from postfix_mtasts.cli.query import run_query

    return run_query(
        config,
        args.domain,
        map_name=args.map,
        as_json=args.json,
        direct=args.direct,
        socket_path=args.socket,
    )
