# -*- test-case-name: tests.unit.test_manpage -*-
"""The postfix-mtasts(8) manual page, generated from the argument parser.

The synopsis and every command's options come from ``build_parser()``, so
the page cannot disagree with ``--help``; the sections argparse knows
nothing about (configuration file, signals, exit status, files) are written
here.  The output is committed as ``man/postfix-mtasts.8``; regenerate it
after changing an option::

    python -m postfix_mtasts.cli.manpage man/postfix-mtasts.8
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

from postfix_mtasts import __version__

__all__ = ["main", "render", "roff_escape"]

PROG = "postfix-mtasts"
SECTION = "8"

_DESCRIPTION = """\
.B postfix\\-mtasts serve
answers Postfix's TLS policy lookups
.RB ( smtp_tls_policy_maps )
with each next\\-hop domain's MTA\\-STS (RFC 8461) policy: it discovers the
policy (the DNS TXT record
.BI _mta\\-sts. domain\\fR,
then the policy file over HTTPS), validates it, caches it, and answers
.B secure
with the policy's MX patterns for a domain in
.B enforce
mode, and
.B NOTFOUND
otherwise, so that Postfix uses its own default level.
.PP
It speaks Postfix's socketmap protocol (recommended) and the tcp_table
protocol, on loopback TCP or unix sockets.
Postfix is told, in
.IR main.cf :
.PP
.RS
.nf
smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix
smtp_tls_CAfile = /etc/ssl/certs/ca\\-certificates.crt
.fi
.RE
.PP
The other commands inspect what the running daemon would answer and its
cache, check a domain's own MTA\\-STS setup as its owner would, and read
the SMTP TLS reports (RFC 8460) that senders mail to the domain's owner.
"""

_CONFIGURATION = """\
.B serve
reads one TOML file, given with
.BR \\-\\-config ;
without it, built\\-in defaults apply: a socketmap listener on
127.0.0.1:8461, one map named
.BR postfix .
The installed file,
.IR /etc/postfix\\-mtasts/postfix\\-mtasts.toml ,
lists every key, commented out at its default.
Its tables:
.TP
.B [[listener]]
an endpoint (\\fBtcp:8461:interface=127.0.0.1\\fR,
\\fBunix:/path:mode=660\\fR or \\fBsystemd:domain=INET:index=0\\fR),
its protocol (\\fBsocketmap\\fR or \\fBtcp_table\\fR), and for unix sockets
the owner and group to give the socket.
.TP
.B [maps.NAME]
one profile per socketmap name: strict_testing, tlsrpt, default_level,
dns_failure, dane, match.
.TP
.BR [dns] ", " [fetch] ", " [cache] ", " [refresh] ", " [server]
resolvers, HTTPS trust
.RB ( ca_file ),
timeouts and bounds.
.TP
.BR [store] ", " [redis]
the SQLite file that keeps policies across restarts, and an optional Redis
server shared by a fleet.
.TP
.BR [control] ", " [log] ", " [postfix]
the control socket of the
.BR cache ,
.B query
and
.B status
commands, the log level and format, and where Postfix's main.cf is.
.TP
.B [metrics]
where Prometheus text is served at /metrics (off by default; loopback or a
unix socket unless allow_remote).
.TP
.B [reports]
the TLS report store, and where
.B serve
takes reports POSTed over HTTPS by senders (RFC 8460; off by default: an
ssl: endpoint with its key and certificate, or a plain one behind a TLS
proxy).
.PP
Unknown keys and invalid values stop the daemon at start with one line that
names the key.
"""

_SIGNALS = """\
.TP
.B SIGHUP
re\\-read the configuration file and the CA file and apply them in place,
keeping the cache and every open Postfix connection; a file that does not
load leaves the running configuration in force, with one error line naming
the key.
.BR [store] ", " [redis] ", " [control] ", " [metrics] ", " [reports]
and a listener's protocol, owner and group need a restart.
.RB ( "systemctl reload postfix\\-mtasts" )
.TP
.BR SIGTERM ", " SIGINT
stop: close the listeners, write the store, exit 0.
"""

_EXIT_STATUS = """\
.B serve
and
.BR cache :
.TP
.B 0
success (for
.BR serve :
stopped by a signal).
.TP
.B 1
a runtime failure: a port already in use, a store or control socket that
cannot be used.
.TP
.B 2
a configuration error (a bad key or value, a file or endpoint that cannot be
used) or a usage error; under systemd,
.B RestartPreventExitStatus=2
leaves the unit failed instead of restarting it.
.PP
.BR query :
0 for an
.B OK
answer, 1 for
.BR NOTFOUND ,
2 for
.BR TEMP ,
.B PERM
or an error, 3 when the running daemon cannot be reached (try
.BR \\-\\-direct ).
.PP
.BR check :
0 when no check fails, 1 when one does, 2 for a usage error, 3 when the
domain could not be checked (verdict
.BR could\\-not\\-check :
no DNS lookup that decides MTA\\-STS was answered).
.PP
.BR status :
0 when the daemon answered, 1 when it answered with an error, 2 when no
control socket is configured or the daemon cannot be reached.
.PP
.BR reports :
0 when every item was read (a report already stored counts as read), 1
when an item was skipped (one
.B skipped
line on stderr for each), 2 for a usage error, no report store, or one
that cannot be used.
.PP
.BR "reports \\-\\-verdict" :
0 when the domain is ready for
.B mode: enforce
(or already enforces with nothing to fix), 1 when it is not ready (the
reasons are printed, most severe first), 2 for a usage or configuration
error; a skipped item does not change it.
"""

_ENVIRONMENT = """\
.TP
.BR SSL_CERT_FILE ", " SSL_CERT_DIR
the CA certificates trusted for policy hosts when
.B [fetch] ca_file
is empty.
.TP
.BR NOTIFY_SOCKET ", " WATCHDOG_USEC ", " LISTEN_FDS
set by systemd: readiness and watchdog notifications, socket activation.
"""

_FILES = """\
.TP
.I /etc/postfix\\-mtasts/postfix\\-mtasts.toml
the configuration (never overwritten by an upgrade; the new default is put
beside it as
.IR postfix\\-mtasts.toml.dist );
.BR cache ", " status " and " query
read it when no
.B \\-\\-config
is given.
.TP
.I /opt/postfix\\-mtasts/venv
the installed program, in a Python virtual environment;
.I /usr/local/bin/postfix\\-mtasts
points into it.
.TP
.I /etc/systemd/system/postfix\\-mtasts.service
the unit; change it with
.BR "systemctl edit postfix\\-mtasts" .
.TP
.I /var/lib/postfix\\-mtasts/policies.sqlite3
the policy store.
.TP
.I /var/lib/postfix\\-mtasts/tlsrpt.sqlite3
the TLS reports read by
.B reports
or received by
.BR serve ,
beside the policy store (a file of its own; or [reports] store).
.TP
.I /run/postfix\\-mtasts/control.sock
the control socket.
.TP
.I /usr/local/share/doc/postfix\\-mtasts/
the README, the default configuration and the example systemd drop\\-ins.
"""

_SEE_ALSO = """\
.BR postconf (5),
.BR socketmap_table (5),
.BR tcp_table (5),
.BR postmap (1),
.BR systemctl (1),
.BR journalctl (1),
.BR systemd.service (5).
.PP
RFC 8461 (SMTP MTA Strict Transport Security),
RFC 8460 (SMTP TLS Reporting).
"""


def roff_escape(text: str) -> str:
    """``text`` as literal roff: backslashes and dashes escaped, and no
    line that begins with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = [
        "\\&" + line if line.startswith((".", "'")) else line
        for line in text.split("\n")
    ]
    return "\n".join(lines)


def _option_synopsis(action: argparse.Action) -> str:
    """One option or operand for a synopsis, in roff: ``[\\-\\-config FILE]``."""
    if not action.option_strings:
        name = roff_escape(_metavar(action))
        text = f"\\fI{name}\\fR"
        if action.nargs == "*":
            return f"[{text} ...]"
        return f"[{text}]" if action.nargs == "?" else text
    flag = roff_escape(action.option_strings[-1])
    text = f"\\fB{flag}\\fR"
    if action.nargs != 0:
        text += f" \\fI{roff_escape(_metavar(action))}\\fR"
    return text if action.required else f"[{text}]"


def _metavar(action: argparse.Action) -> str:
    if isinstance(action.metavar, str):
        return action.metavar
    if action.option_strings:
        return action.dest.upper()
    return action.dest


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The action's help with %(default)s and the like expanded."""
    formatter = parser._get_formatter()
    return formatter._expand_help(action) if action.help else ""


def _own_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
    ]


def _subcommands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each subcommand, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    """Every leaf command (``("cache", "list")``), depth first, with its help.

    A command with subcommands contributes its own options to each leaf.
    """
    for name, text, sub in _subcommands(parser):
        path = (*words, name)
        if any(True for _ in _subcommands(sub)):
            yield from _commands(sub, path)
        else:
            yield path, text, sub


def _chain(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> list[tuple[str, argparse.ArgumentParser]]:
    """The parsers from the top one down to the command ``path``."""
    chain = [("", parser)]
    for word in path:
        subs = {name: sub for name, _, sub in _subcommands(chain[-1][1])}
        chain.append((word, subs[word]))
    return chain


def _synopsis(parser: argparse.ArgumentParser) -> Iterator[str]:
    yield ".SH SYNOPSIS"
    yield f".B {PROG}"
    yield "\\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR"
    for path, _, _sub in _commands(parser):
        yield ".br"
        words: list[str] = []
        for word, level in _chain(parser, path)[1:]:
            words.append(f"\\fB{roff_escape(word)}\\fR")
            words.extend(_option_synopsis(a) for a in _own_actions(level))
        yield f".B {PROG}"
        yield " ".join(words)


def _command_sections(parser: argparse.ArgumentParser) -> Iterator[str]:
    yield ".SH COMMANDS"
    for path, text, _ in _commands(parser):
        chain = _chain(parser, path)
        yield ".SS " + roff_escape(" ".join(path))
        yield roff_escape(text[:1].upper() + text[1:]) + "."
        for _, level in chain[1:]:
            for action in _own_actions(level):
                yield ".TP"
                if action.option_strings:
                    flags = ", ".join(
                        f"\\fB{roff_escape(s)}\\fR" for s in action.option_strings
                    )
                    if action.nargs != 0:
                        flags += f" \\fI{roff_escape(_metavar(action))}\\fR"
                    yield flags
                else:
                    yield f"\\fI{roff_escape(_metavar(action))}\\fR"
                yield roff_escape(_help(level, action))


def render(parser: argparse.ArgumentParser) -> str:
    """The whole manual page, as roff (man macros)."""
    title = PROG.upper().replace("-", "\\-")
    out = [
        '.\\" Generated by python -m postfix_mtasts.cli.manpage; do not edit.',
        f'.TH {title} {SECTION} "" "{PROG} {__version__}" "System Manager\'s Manual"',
        ".nh",  # no hyphenation: paths and option names stay whole
        ".ad l",
        ".SH NAME",
        f"{roff_escape(PROG)} \\- {roff_escape('MTA-STS policy daemon for Postfix')}",
        *_synopsis(parser),
        ".SH DESCRIPTION",
        _DESCRIPTION.rstrip("\n"),
        *_command_sections(parser),
        ".SH CONFIGURATION FILE",
        _CONFIGURATION.rstrip("\n"),
        ".SH SIGNALS",
        _SIGNALS.rstrip("\n"),
        ".SH EXIT STATUS",
        _EXIT_STATUS.rstrip("\n"),
        ".SH ENVIRONMENT",
        _ENVIRONMENT.rstrip("\n"),
        ".SH FILES",
        _FILES.rstrip("\n"),
        ".SH SEE ALSO",
        _SEE_ALSO.rstrip("\n"),
    ]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the page to the file named in ``argv`` (or stdout)."""
    from postfix_mtasts.cli import build_parser

    args = list(sys.argv[1:] if argv is None else argv)
    page = render(build_parser())
    if args:
        with open(args[0], "w", encoding="utf-8") as f:
            f.write(page)
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
