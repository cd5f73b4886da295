# -*- test-case-name: tests.unit.test_cli -*-
"""The ``postfix-mtasts`` command: argument parsing and dispatch.

A configuration error is one line on stderr with the ``<3>`` priority
prefix (journald reads it as PRIORITY=3, so ``journalctl -p err`` shows why
the unit failed) and exit status 2; an unexpected error is one critical
entry with its traceback (:func:`postfix_mtasts.journal.report_crash`) and
exit status 1.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence

from postfix_mtasts.cli.arguments import ADMIN_HELP, INSTALLED_CONFIG, build_parser
from postfix_mtasts.core.config import Config, ConfigError, load

__all__ = [
    "ADMIN_HELP",
    "INSTALLED_CONFIG",
    "PASSED_SOCKETS",
    "build_parser",
    "config_path",
    "error_line",
    "main",
]

#: systemd's socket-activation variables as this process received them,
#: taken at import: importing twisted.internet.endpoints (which the start-up
#: checks do) deletes LISTEN_PID and LISTEN_FDS from os.environ.
PASSED_SOCKETS = {
    key: os.environ[key]
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
    if key in os.environ
}


def config_path(
    command: str, given: str | None, installed: str = INSTALLED_CONFIG
) -> str | None:
    """The configuration file ``command`` reads: ``--config`` when given,
    else the installed one for the admin commands when it exists."""
    if given is not None or command == "serve":
        return given
    return installed if os.path.isfile(installed) else None


def error_line(message: str) -> None:
    """One error line on stderr, with the ``<3>`` prefix journald reads."""
    print(f"<3>postfix-mtasts: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    # Starting creates long-lived objects only (modules, classes, the stored
    # policies): no garbage collection passes over them until serve answers
    # (about a tenth of its start, issue 13).  Every other command turns it
    # back on at once (_main); so does serve once started (run_serve).
    gc.disable()
    try:
        return _main(argv)
    except Exception:  # a bug: one journal entry with the traceback, exit 1
        from twisted.python.failure import Failure

        from postfix_mtasts.journal import report_crash

        report_crash(sys.stderr, Failure())  # type: ignore[no-untyped-call]
        return 1
    finally:
        gc.enable()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        gc.enable()
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "check":  # needs no configuration
        from postfix_mtasts.cli.check import run_check

        return run_check(args)
    if args.command == "reports":  # its own store; the configuration only names it
        from postfix_mtasts.cli.reports import run_reports

        return run_reports(args)
    args.config = config_path(args.command, args.config)
    try:
        config = load(args.config)
        _check(args.command, config, args.config, direct=getattr(args, "direct", False))
    except ConfigError as e:
        error_line(f"configuration error: {e}")
        return 2
    if args.command == "serve":
        from postfix_mtasts.cli.serve import run_serve

        return run_serve(config, args.config)
    if args.command == "cache":
        from postfix_mtasts.cli.cache import run_cache

        return run_cache(config, args)
    if args.command == "status":
        from postfix_mtasts.cli.status import run_status

        return run_status(config, args)
    from postfix_mtasts.cli.query import run_query

    return run_query(
        config,
        args.domain,
        map_name=args.map,
        as_json=args.json,
        direct=args.direct,
        socket_path=args.socket,
    )


def _check(
    command: str, config: Config, path: str | None, *, direct: bool = False
) -> None:
    """What the command needs from the system that the configuration names
    (:mod:`postfix_mtasts.preflight`); its ConfigError names the file."""
    from postfix_mtasts.preflight import check_ca_file, check_serve

    try:
        if command == "serve":
            check_serve(config, environ=PASSED_SOCKETS)
        elif command == "query" and direct:  # through the daemon: its own CA
            check_ca_file(config)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None
