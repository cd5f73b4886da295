"""Tests for the ``postfix-mtasts`` console script that need no network and no
reactor: argument parsing, configuration errors, the offline parts of
``query``, and the ``cache`` verbs working on the SQLite store file when no
daemon answers on the control socket (README "The cache, by hand").

``check`` has its own module, test_checker_cli.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts import __version__
from postfix_mtasts.cache.sqlite_db import open_db, read_all, write
from postfix_mtasts.cli import INSTALLED_CONFIG, build_parser, config_path, main
from postfix_mtasts.cli.cache import run_cache
from postfix_mtasts.cli.query import _text_rows, describe
from postfix_mtasts.control import MAX_LINE_BYTES
from postfix_mtasts.core.answer import Answer, PolicyFailure, TlsPolicyValue
from postfix_mtasts.core.config import load
from postfix_mtasts.core.dane import FactsRecord, MxFacts, TlsaState
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.mx import policy_value
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.core.report import failure_value

from .fakes import make_policy

# The offline cache verbs read the wall clock.  Entries fetched in 2100 are
# live whenever the tests run, and their dates always print the same.
Y2100 = 4_102_444_800.0
ALPHA = CacheEntry.fetched(
    "alpha.example", "id1", make_policy(Mode.ENFORCE, ("mx1.alpha.example",)), Y2100
)
BETA = CacheEntry.fetched(
    "beta.example",
    "20991231",
    make_policy(Mode.TESTING, ("*.beta.example",), max_age=604800),
    Y2100,
)
# Past its expiry and the store's grace day whenever the tests run (E9).
GONE = CacheEntry.fetched("gone.example", "old", make_policy(), 1_000_000_000.0)

ALPHA_ROW = {
    "domain": "alpha.example",
    "id": "id1",
    "mode": "enforce",
    "max_age": 86400,
    "mx": ["mx1.alpha.example"],
    "fetched_at": "2100-01-01T00:00:00Z",
    "checked_at": "2100-01-01T00:00:00Z",
    "expires_at": "2100-01-02T00:00:00Z",
    "tolerated": [],
}
BETA_ROW = {
    "domain": "beta.example",
    "id": "20991231",
    "mode": "testing",
    "max_age": 604800,
    "mx": ["*.beta.example"],
    "fetched_at": "2100-01-01T00:00:00Z",
    "checked_at": "2100-01-01T00:00:00Z",
    "expires_at": "2100-01-08T00:00:00Z",
    "tolerated": [],
}


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def exit_code(argv: list[str]) -> tuple[int | str | None, str, str]:
    """Run ``main`` where argparse ends it with SystemExit: (code, out, err)."""
    with captured() as (out, err):
        try:
            main(argv)
        except SystemExit as e:
            return e.code, out.getvalue(), err.getvalue()
    raise AssertionError(f"{argv} did not exit")


class ArgumentTests(SynchronousTestCase):
    def test_no_command(self) -> None:
        """Without a command the usage goes to stdout and the exit status is 2."""
        with captured() as (out, err):
            self.assertEqual(main([]), 2)
        self.assertTrue(out.getvalue().startswith("usage: postfix-mtasts "))
        self.assertEqual(err.getvalue(), "")

    def test_help(self) -> None:
        """--help lists the commands and exits 0."""
        code, out, _ = exit_code(["--help"])
        self.assertEqual(code, 0)
        self.assertTrue(out.startswith("usage: postfix-mtasts "))
        for command in ("serve", "query", "cache", "check", "status", "reports"):
            self.assertIn(command, out)

    def test_command_help(self) -> None:
        """Each command and cache verb has its own --help, exit 0."""
        for argv in (
            ["serve"],
            ["query"],
            ["check"],
            ["reports"],
            ["cache"],
            *(["cache", verb] for verb in ("list", "show", "purge", "refresh")),
            *(["cache", verb] for verb in ("export", "import")),
        ):
            code, out, _ = exit_code([*argv, "--help"])
            self.assertEqual(code, 0, argv)
            self.assertTrue(
                out.startswith("usage: postfix-mtasts " + " ".join(argv)), out
            )

    def test_version(self) -> None:
        """--version prints the package version and exits 0."""
        self.assertEqual(
            exit_code(["--version"]), (0, f"postfix-mtasts {__version__}\n", "")
        )

    def test_usage_errors(self) -> None:
        """Unknown commands and verbs, missing arguments and unknown options
        are usage errors: exit 2 with the reason on stderr, nothing on stdout."""
        for argv, reason in (
            (["frobnicate"], "invalid choice: 'frobnicate'"),
            (["cache"], "the following arguments are required: VERB"),
            (["cache", "flush"], "invalid choice: 'flush'"),
            (["cache", "show"], "the following arguments are required: domain"),
            (["cache", "import"], "the following arguments are required: file"),
            (["query"], "the following arguments are required: domain"),
            (["serve", "--listen", "x"], "unrecognized arguments: --listen x"),
        ):
            code, out, err = exit_code(argv)
            self.assertEqual((code, out), (2, ""), argv)
            self.assertIn(reason, err, argv)

    def test_query_arguments(self) -> None:
        """query takes DOMAIN, --config, --map (default postfix), --json,
        --direct and --socket."""
        args = build_parser().parse_args(["query", "example.com"])
        self.assertEqual(
            (args.command, args.domain, args.config, args.map, args.json),
            ("query", "example.com", None, "postfix", False),
        )
        self.assertEqual((args.direct, args.socket), (False, None))
        args = build_parser().parse_args(
            ["query", "--direct", "--socket", "/s", "x.example"]
        )
        self.assertEqual((args.direct, args.socket), (True, "/s"))
        args = build_parser().parse_args(
            ["query", "--config", "/c.toml", "--map", "relay", "--json", "x.example"]
        )
        self.assertEqual(
            (args.domain, args.config, args.map, args.json),
            ("x.example", "/c.toml", "relay", True),
        )

    def test_cache_arguments(self) -> None:
        """cache takes --config and --socket before its verb; export writes
        to stdout unless given a file."""
        args = build_parser().parse_args(
            ["cache", "--config", "/c.toml", "--socket", "/s", "show", "a.example"]
        )
        self.assertEqual(
            (args.command, args.config, args.socket, args.verb, args.domain),
            ("cache", "/c.toml", "/s", "show", "a.example"),
        )
        args = build_parser().parse_args(["cache", "export"])
        self.assertEqual((args.socket, args.file), (None, "-"))
        args = build_parser().parse_args(["cache", "list", "--json"])
        self.assertEqual((args.verb, args.json), ("list", True))


class TempDirTestCase(SynchronousTestCase):
    def make_dir(self) -> str:
        directory = tempfile.TemporaryDirectory(prefix="cli-")
        self.addCleanup(directory.cleanup)
        return directory.name


# (what is wrong, file content, the key path the message must start with)
BAD_CONFIGS: list[tuple[str, bytes, str]] = [
    ("bad choice", b'[maps.postfix]\ndns_failure = "defer"\n', "maps.postfix.dns_failure"),
    ("unknown key", b"[cache]\nmax_entry = 5\n", "cache.max_entry"),
    ("below B14", b"[cache]\nfailure_backoff = 10\n", "cache.failure_backoff"),
    ("wrong type", b'[fetch]\ntimeout = "soon"\n', "fetch.timeout"),
    ("bad listener", b'[[listener]]\nprotocol = "smtp"\n', "listener[0].protocol"),
    ("not TOML", b"x = \n", "invalid TOML"),
    ("not UTF-8", b"\xff\n", "not UTF-8"),
]  # fmt: skip


class ConfigErrorTests(TempDirTestCase):
    def test_bad_file(self) -> None:
        """A bad --config stops serve, query and cache before any work: exit
        status 2 and one stderr line naming the file and the key at fault,
        with the <3> prefix journald reads as PRIORITY=3 (issue 11)."""
        directory = self.make_dir()
        path = os.path.join(directory, "bad.toml")
        for what, content, key in BAD_CONFIGS:
            with open(path, "wb") as f:
                f.write(content)
            for argv in (
                ["serve", "--config", path],
                ["query", "--config", path, "example.com"],
                ["cache", "--config", path, "list"],
            ):
                with captured() as (out, err):
                    self.assertEqual(main(argv), 2, (what, argv))
                self.assertEqual(out.getvalue(), "", what)
                message = err.getvalue()
                self.assertTrue(
                    message.startswith(
                        f"<3>postfix-mtasts: configuration error: {path}: {key}"
                    ),
                    (what, message),
                )
                self.assertEqual(message.count("\n"), 1, (what, message))

    def test_missing_file(self) -> None:
        """A --config that cannot be read: exit 2, the file and the reason."""
        path = os.path.join(self.make_dir(), "missing.toml")
        with captured() as (out, err):
            self.assertEqual(main(["serve", "--config", path]), 2)
        self.assertEqual(
            (out.getvalue(), err.getvalue()),
            (
                "",
                f"<3>postfix-mtasts: configuration error: {path}: cannot read: "
                "No such file or directory\n",
            ),
        )


class QueryTests(TempDirTestCase):
    def test_unknown_map(self) -> None:
        """query --direct --map with a map the configuration lacks is an
        error (exit 2) found before any DNS or HTTPS (G.6 unknown map name)."""
        path = os.path.join(self.make_dir(), "c.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("[maps.relay]\n")
        argv = ["query", "--direct", "--config", path, "--map", "postfix"]
        with captured() as (out, err):
            self.assertEqual(main([*argv, "x.example"]), 2)
        self.assertEqual(
            (out.getvalue(), err.getvalue()),
            ("", "postfix-mtasts: no map named 'postfix' in the configuration\n"),
        )

    def test_query_needs_the_daemon(self) -> None:
        """query asks the running daemon by default: when its control socket
        cannot be reached (or none is configured), exit 3 and a message
        that suggests --direct; nothing is discovered (issue 11)."""
        directory = self.make_dir()
        sock = os.path.join(directory, "control.sock")
        path = os.path.join(directory, "c.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"[control]\nsocket = {sock!r}\n")
        with captured() as (out, err):
            self.assertEqual(main(["query", "--config", path, "x.example"]), 3)
        self.assertEqual(out.getvalue(), "")
        self.assertEqual(
            err.getvalue(),
            f"postfix-mtasts: cannot ask the daemon at {sock}: [Errno 2] No such "
            "file or directory; is it running? 'postfix-mtasts query --direct "
            "x.example' runs a discovery of its own, without the daemon's cache\n",
        )
        with open(path, "w", encoding="utf-8") as f:
            f.write('[control]\nsocket = ""\n')
        with captured() as (out, err):
            self.assertEqual(main(["query", "--config", path, "x.example"]), 3)
        self.assertIn("no control socket configured", err.getvalue())
        self.assertIn("--direct", err.getvalue())

    def test_describe_enforce(self) -> None:
        """The --json report of an enforced policy: the exact reply Postfix
        would hear, the cached policy with its dates (G24, E13), and whether
        the map has DANE precedence, and why (D13)."""
        entry = ALPHA
        answer = Answer.ok(
            policy_value("alpha.example", entry.policy, report=False),
            reason="policy id1 mode enforce",
        )
        why = "dane = \"auto\", Postfix smtp_dns_support_level = 'enabled' (postconf)"
        report = describe(
            "Alpha.Example.",
            "alpha.example",
            answer,
            entry,
            Y2100 + 90,
            dane=(False, why),
        )
        self.assertEqual(
            report,
            {
                "key": "Alpha.Example.",
                "domain": "alpha.example",
                "status": "OK",
                "reply": "OK secure match=mx1.alpha.example servername=hostname",
                "reason": "policy id1 mode enforce",
                "policy": {
                    "id": "id1",
                    "mode": "enforce",
                    "max_age": 86400,
                    "mx": ["mx1.alpha.example"],
                    "fetched_at": "2100-01-01T00:00:00Z",
                    "expires_at": "2100-01-02T00:00:00Z",
                    "age_s": 90.0,
                    "source": "fetch",
                    "tolerated": [],
                },
                "dane_precedence": {"on": False, "why": why},
                "mx_facts": None,
            },
        )
        self.assertEqual(json.loads(json.dumps(report)), report)
        self.assertIn(("dane map", f"off ({why})"), _text_rows(report))

    def test_describe_tolerated(self) -> None:
        """`query` shows what the reader tolerated in the cached policy, one
        row per kind (issue 12)."""
        entry = evolve(
            ALPHA, tolerated=("indented (C2) line(s) 1: x", "stray-line (C2): y")
        )
        answer = Answer.ok(
            policy_value("alpha.example", entry.policy, report=False), reason="r"
        )
        report = describe("alpha.example", "alpha.example", answer, entry, Y2100, None)
        self.assertEqual(report["policy"]["tolerated"], list(entry.tolerated))
        rows = [row for row in _text_rows(report) if row[0] == "tolerated"]
        self.assertEqual(rows, [("tolerated", line) for line in entry.tolerated])

    def test_describe_mx_facts(self) -> None:
        """`query` shows the MX facts DANE precedence read: MX hosts, whether
        their RRset was validated, TLSA per host, the verdict and until when
        they hold; a failed MX lookup shows its reason (D13)."""
        facts = MxFacts(
            ("mx1.alpha.example", "mx2.alpha.example"),
            True,
            (TlsaState.VALIDATED, TlsaState.NONE),
            Y2100,
            300,
        )
        answer = Answer.ok(TlsPolicyValue("dane"), reason="policy id1 mode enforce")
        record = FactsRecord.gathered(facts)
        report = describe(
            "alpha.example", "alpha.example", answer, ALPHA, Y2100, record
        )
        self.assertEqual(report["reply"], "OK dane")
        self.assertEqual(
            report["mx_facts"],
            {
                "verdict": "dane",
                "failure": None,
                "due_at": "2100-01-01T00:05:00Z",
                "mx": ["mx1.alpha.example", "mx2.alpha.example"],
                "more_mx": 0,
                "implicit_mx": False,
                "mx_secure": True,
                "tlsa": {
                    "mx1.alpha.example": "validated",
                    "mx2.alpha.example": "none",
                },
                "checked_at": "2100-01-01T00:00:00Z",
                "expires_at": "2100-01-01T00:05:00Z",
            },
        )
        self.assertEqual(
            _text_rows(report)[-2:],
            [
                (
                    "tlsa",
                    "mx1.alpha.example=validated, mx2.alpha.example=none",
                ),
                ("dane", "dane (until 2100-01-01T00:05:00Z)"),
            ],
        )
        failed = FactsRecord(None, Y2100 + 60, "MX lookup failed: SERVFAIL")
        report = describe("a.example", "a.example", Answer.temp("x"), None, 0, failed)
        self.assertEqual(
            (report["mx_facts"]["verdict"], report["mx_facts"]["mx"]),
            ("unknown", None),
        )
        self.assertEqual(
            _text_rows(report)[-1], ("mx error", "MX lookup failed: SERVFAIL")
        )

    def test_describe_report_only(self) -> None:
        """`query` shows a tlsrpt map's report-only answers as Postfix hears
        them: a policy failure with its type and reason (D14, G29)."""
        answer = Answer.ok(
            failure_value("x.example", PolicyFailure.WEBPKI_INVALID, "may"),
            reason="certificate does not name the policy host",
        )
        report = describe("x.example", "x.example", answer, None, 0)
        self.assertEqual(
            (report["status"], report["reply"], report["reason"]),
            (
                "OK",
                "OK may policy_type=sts policy_domain=x.example"
                " policy_failure=sts-webpki-invalid",
                "certificate does not name the policy host",
            ),
        )

    def test_describe_without_policy(self) -> None:
        """NOTFOUND is reported without a reason word in the reply, TEMP
        with its reason; a key that is no domain has domain null (G4, G12)."""
        self.assertEqual(
            describe("[relay.example]:587", "", Answer.notfound("smart host"), None, 0),
            {
                "key": "[relay.example]:587",
                "domain": None,
                "status": "NOTFOUND",
                "reply": "NOTFOUND",
                "reason": "smart host",
                "policy": None,
                "dane_precedence": None,
                "mx_facts": None,
            },
        )
        self.assertEqual(
            describe("x.example", "x.example", Answer.temp("dns down"), None, 0),
            {
                "key": "x.example",
                "domain": "x.example",
                "status": "TEMP",
                "reply": "TEMP dns down",
                "reason": "dns down",
                "policy": None,
                "dane_precedence": None,
                "mx_facts": None,
            },
        )


class OfflineCacheTests(TempDirTestCase):
    """``cache --offline`` verbs with no daemon: every verb but refresh works
    on the store file (README); without --offline an unreachable socket is
    an error and the store is not touched (issue 11)."""

    def setUp(self) -> None:
        self.dir = self.make_dir()
        self.store = os.path.join(self.dir, "policies.sqlite3")
        self.socket = os.path.join(self.dir, "control.sock")
        self.config = self.write_config(self.store, self.socket)
        self.offline = ""
        self.seed(self.store, [ALPHA, BETA, GONE])

    def write_config(self, store: str, socket: str, name: str = "c.toml") -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"[store]\npath = {store!r}\n[control]\nsocket = {socket!r}\n")
        return path

    def seed(self, store: str, entries: list[CacheEntry]) -> None:
        with contextlib.closing(open_db(store, busy_timeout_s=5.0)) as db:
            write(db, [(e.domain, (e, e.fetched_at)) for e in entries], 1000)

    def cache(
        self, *argv: str, config: str | None = None, offline: bool = True
    ) -> tuple[int, str, str]:
        """Run ``postfix-mtasts cache --config FILE [--offline] ARGV...``:
        (status, out, err).

        run_cache is called with its own output stream: its default is the
        sys.stdout of import time, which redirect_stdout cannot replace."""
        path = config or self.config
        flags = ["--offline"] if offline else []
        args = build_parser().parse_args(["cache", "--config", path, *flags, *argv])
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err):
            status = run_cache(load(path), args, out)
        return status, out.getvalue(), err.getvalue()

    def test_list(self) -> None:
        """list: one line per live entry, sorted; an entry past its expiry
        and the store's grace is not shown (E9)."""
        self.assertEqual(
            self.cache("list"),
            (
                0,
                "alpha.example".ljust(40)
                + " enforce  id=id1 expires=2100-01-02T00:00:00Z\n"
                + "beta.example".ljust(40)
                + " testing  id=20991231 expires=2100-01-08T00:00:00Z\n",
                self.offline,
            ),
        )

    def test_list_json(self) -> None:
        """list --json: the rows as a JSON list, without the policy lines."""
        status, out, err = self.cache("list", "--json")
        self.assertEqual(
            (status, json.loads(out), err), (0, [ALPHA_ROW, BETA_ROW], self.offline)
        )

    def test_show(self) -> None:
        """show: the whole entry, policy lines included; the domain is
        normalised like a Postfix key (G8, E13)."""
        for key in ("beta.example", "BETA.Example."):
            status, out, err = self.cache("show", key)
            self.assertEqual(
                (status, json.loads(out), err),
                (0, {**BETA_ROW, "policy": list(BETA.policy.lines)}, self.offline),
                key,
            )

    def test_show_errors(self) -> None:
        """show of a domain not cached, expired past grace, or no domain at
        all: exit 1 and the reason (E9, G12)."""
        for key, reason in (
            ("other.example", "other.example is not cached"),
            ("gone.example", "gone.example is not cached"),
            ("[192.0.2.1]", "not a domain: '[192.0.2.1]'"),
        ):
            self.assertEqual(
                self.cache("show", key),
                (1, "", self.offline + f"postfix-mtasts: {reason}\n"),
                key,
            )

    def test_purge(self) -> None:
        """purge removes the entry from the store file (E11: the admin's way
        to drop a policy changed without a new id); a second purge says so."""
        self.assertEqual(
            self.cache("purge", "alpha.example"),
            (0, "purged: alpha.example\n", self.offline),
        )
        self.assertEqual(
            self.cache("purge", "alpha.example"),
            (0, "was not cached: alpha.example\n", self.offline),
        )
        status, out, _ = self.cache("list", "--json")
        self.assertEqual((status, json.loads(out)), (0, [BETA_ROW]))

    def test_export(self) -> None:
        """export: one stored entry per line, in the store's own format, to
        stdout or to a file."""
        status, out, err = self.cache("export")
        self.assertEqual((status, err), (0, self.offline))
        expected = sorted(e.to_bytes().decode() + "\n" for e in (ALPHA, BETA))
        self.assertEqual(sorted(out.splitlines(keepends=True)), expected)
        target = os.path.join(self.dir, "backup.jsonl")
        self.assertEqual(self.cache("export", target), (0, "", self.offline))
        with open(target, encoding="utf-8") as f:
            self.assertEqual(sorted(f), expected)

    def test_import_round_trip(self) -> None:
        """What export wrote, import loads into another store file."""
        backup = os.path.join(self.dir, "backup.jsonl")
        self.assertEqual(self.cache("export", backup)[0], 0)
        store = os.path.join(self.dir, "other.sqlite3")
        self.seed(store, [])
        other = self.write_config(store, self.socket, "other.toml")
        status, out, _ = self.cache("import", backup, config=other)
        self.assertEqual((status, out), (0, "imported 2, kept 0 newer, rejected 0\n"))
        status, out, _ = self.cache("list", "--json", config=other)
        self.assertEqual((status, json.loads(out)), (0, [ALPHA_ROW, BETA_ROW]))

    def test_import_rejects(self) -> None:
        """import validates each entry like a fetch: a key that is no domain
        or an IP as mx is rejected, the rest is loaded (F8, C13)."""
        good = json.loads(
            CacheEntry.fetched("new.example", "n1", make_policy(), Y2100).to_bytes()
        )
        smart_host = {**good, "domain": "[relay.example]:587"}
        ip_mx = {**good, "domain": "ip.example", "mx": ["192.0.2.1"]}
        source = os.path.join(self.dir, "in.jsonl")
        with open(source, "w", encoding="utf-8") as f:
            for item in (good, smart_host, ip_mx):
                f.write(json.dumps(item) + "\n\n")
        self.assertEqual(
            self.cache("import", source),
            (0, "imported 1, kept 0 newer, rejected 2\n", self.offline),
        )
        status, out, _ = self.cache("list", "--json")
        self.assertEqual(status, 0)
        self.assertEqual(
            [row["domain"] for row in json.loads(out)],
            ["alpha.example", "beta.example", "new.example"],
        )

    def test_import_not_json(self) -> None:
        """import of a file with a line that is not JSON fails cleanly: exit
        2 and a message naming the file; the store is unchanged."""
        source = os.path.join(self.dir, "bad.jsonl")
        with open(source, "w", encoding="utf-8") as f:
            f.write("not json\n")
        status, out, err = self.cache("import", source)
        self.assertEqual((status, out), (2, ""))
        self.assertTrue(err.startswith("postfix-mtasts: "), err)
        self.assertIn(source, err)
        status, out, _ = self.cache("list", "--json")
        self.assertEqual((status, json.loads(out)), (0, [ALPHA_ROW, BETA_ROW]))

    def test_import_skips_overlong_lines(self) -> None:
        """A line over the control socket's line bound is counted as
        rejected and not sent, never held whole, even if it is valid JSON;
        the entries around it are imported (issue 9)."""
        source = os.path.join(self.dir, "long.jsonl")
        gamma = CacheEntry.fetched("gamma.example", "g1", make_policy(), Y2100)
        with open(source, "wb") as f:
            f.write(b'"' + b"x" * (MAX_LINE_BYTES + 5) + b'"\n')
            f.write(gamma.to_bytes() + b"\n")
            padded = ALPHA.to_bytes().replace(b"{", b"{" + b" " * MAX_LINE_BYTES, 1)
            f.write(padded + b"\n")  # valid, but no entry is that long
        self.assertEqual(
            self.cache("import", source),
            (0, "imported 1, kept 0 newer, rejected 2\n", self.offline),
        )

    def test_import_from_stdin(self) -> None:
        """import - reads standard input (checked whole before anything is
        imported, as a file is)."""
        gamma = CacheEntry.fetched("gamma.example", "g1", make_policy(), Y2100)
        stdin = io.TextIOWrapper(io.BytesIO(gamma.to_bytes() + b"\n"))
        self.patch(sys, "stdin", stdin)
        self.assertEqual(
            self.cache("import", "-"),
            (0, "imported 1, kept 0 newer, rejected 0\n", self.offline),
        )
        self.patch(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"{}\nnot json\n")))
        status, out, err = self.cache("import", "-")
        self.assertEqual((status, out), (2, ""))
        self.assertIn("line 2 is not JSON", err)

    def test_import_missing_file(self) -> None:
        """import of a file that does not exist fails cleanly: exit 2 and a
        message naming the file."""
        source = os.path.join(self.dir, "missing.jsonl")
        status, out, err = self.cache("import", source)
        self.assertEqual((status, out), (2, ""))
        self.assertTrue(err.startswith("postfix-mtasts: "), err)
        self.assertIn(source, err)

    def test_refresh_needs_the_daemon(self) -> None:
        """refresh fetches, which only the daemon does: without it, exit 2
        and a message naming the socket; the store is not opened."""
        os.remove(self.store)
        with captured() as (out, err):
            status = main(
                ["cache", "--config", self.config, "refresh", "alpha.example"]
            )
        self.assertEqual(
            (status, out.getvalue(), err.getvalue()),
            (
                2,
                "",
                f"postfix-mtasts: cannot reach the daemon at {self.socket}: "
                "[Errno 2] No such file or directory\n",
            ),
        )
        self.assertFalse(os.path.exists(self.store))

    def test_no_store_file(self) -> None:
        """--offline with no store file: exit 2, naming it; no file is
        created."""
        os.remove(self.store)
        self.assertEqual(
            self.cache("list"),
            (2, "", f"postfix-mtasts: there is no store file at {self.store}\n"),
        )
        self.assertFalse(os.path.exists(self.store))

    def test_memory_only_store(self) -> None:
        """With ``[store] path = ""`` there is no file to work on: --offline
        says so; without it, the unreachable socket is the error."""
        config = self.write_config("", self.socket, "memory.toml")
        self.assertEqual(
            self.cache("list", config=config),
            (2, "", "postfix-mtasts: --offline needs a store file ([store] path)\n"),
        )
        status, out, err = self.cache("list", config=config, offline=False)
        self.assertEqual((status, out), (2, ""))
        self.assertEqual(
            err,
            f"postfix-mtasts: cannot reach the daemon at {self.socket}: "
            "[Errno 2] No such file or directory\n",
        )

    def test_unreachable_socket_never_edits_the_store(self) -> None:
        """Without --offline, a control socket that cannot be reached (a
        wrong --socket) is an error for every verb, saying how to work on
        the store of a stopped daemon; the store is not touched (issue 11,
        E11: a running daemon would go on answering from memory)."""
        with open(self.store, "rb") as f:
            before = f.read()
        wrong = os.path.join(self.dir, "wrong.sock")
        for verb in (["purge", "alpha.example"], ["list"]):
            status, out, err = self.cache("--socket", wrong, *verb, offline=False)
            self.assertEqual(
                (status, out, err),
                (
                    2,
                    "",
                    f"postfix-mtasts: cannot reach the daemon at {wrong}: [Errno 2] "
                    "No such file or directory\npostfix-mtasts: if the daemon is "
                    f"stopped, 'cache --offline {verb[0]}' works on its store "
                    f"{self.store}\n",
                ),
            )
        with open(self.store, "rb") as f:
            self.assertEqual(f.read(), before)
        status, out, _ = self.cache("list", "--json")
        self.assertEqual((status, json.loads(out)), (0, [ALPHA_ROW, BETA_ROW]))

    def test_offline_refused_while_the_store_is_open(self) -> None:
        """--offline is refused, and changes nothing, while another
        connection has the store open as a running daemon's does (its WAL
        connection holds a shared lock): exit 2, saying so (issue 11)."""
        daemon = open_db(self.store, busy_timeout_s=5.0)
        self.addCleanup(daemon.close)
        self.assertEqual(len(read_all(daemon, Y2100)[0]), 2)
        status, out, err = self.cache("purge", "alpha.example")
        self.assertEqual(
            (status, out, err),
            (
                2,
                "",
                f"postfix-mtasts: the store {self.store} is in use, by a running "
                "daemon most likely: it is not edited behind the daemon's back; "
                "reach the daemon through its control socket\n",
            ),
        )
        self.assertEqual(len(read_all(daemon, Y2100)[0]), 2)
        daemon.close()
        self.assertEqual(
            self.cache("purge", "alpha.example"), (0, "purged: alpha.example\n", "")
        )

    def test_import_keeps_newer_entries(self) -> None:
        """An import never replaces a newer stored entry with an older one:
        the older is counted as kept out; a newer one replaces (issue 11,
        E1)."""
        older = CacheEntry.fetched(
            "alpha.example", "old1", make_policy(Mode.TESTING), Y2100 - 3600
        )
        newer = CacheEntry.fetched("beta.example", "new1", make_policy(), Y2100 + 60)
        source = os.path.join(self.dir, "backup.jsonl")
        with open(source, "wb") as f:
            f.write(older.to_bytes() + b"\n" + newer.to_bytes() + b"\n")
        self.assertEqual(
            self.cache("import", source),
            (0, "imported 1, kept 1 newer, rejected 0\n", ""),
        )
        status, out, _ = self.cache("list", "--json")
        self.assertEqual(status, 0)
        self.assertEqual(
            [(row["domain"], row["id"]) for row in json.loads(out)],
            [("alpha.example", "id1"), ("beta.example", "new1")],
        )

    def test_no_control_socket(self) -> None:
        """``[control] socket = ""`` and no --socket: exit 2, naming the key;
        --offline needs no socket."""
        config = self.write_config(self.store, "", "nosocket.toml")
        self.assertEqual(
            self.cache("list", config=config, offline=False),
            (
                2,
                "",
                "postfix-mtasts: no control socket configured ([control] socket)\n",
            ),
        )
        status, out, err = self.cache("list", config=config)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(len(out.splitlines()), 2)

    def test_unknown_schema(self) -> None:
        """A store file of another schema version is refused, not rewritten."""
        with contextlib.closing(sqlite3.connect(self.store)) as db:
            db.execute("PRAGMA user_version = 99")
        status, out, err = self.cache("list")
        self.assertEqual((status, out), (2, ""))
        self.assertEqual(
            err,
            self.offline
            + f"postfix-mtasts: cannot use the store: {self.store} has schema "
            "version 99, this postfix-mtasts knows 1\n",
        )


class InstalledConfigTests(TempDirTestCase):
    """The admin commands find the installed configuration (and through it
    the running daemon's control socket) without --config; serve never
    guesses: without --config it runs on the built-in defaults."""

    def test_admin_commands_read_the_installed_file(self) -> None:
        installed = os.path.join(self.make_dir(), "postfix-mtasts.toml")
        with open(installed, "w") as f:
            f.write("")
        for command in ("cache", "status", "query"):
            self.assertEqual(config_path(command, None, installed), installed)
            self.assertEqual(config_path(command, "/x.toml", installed), "/x.toml")
        self.assertIsNone(config_path("serve", None, installed))

    def test_no_installed_file(self) -> None:
        missing = os.path.join(self.make_dir(), "absent.toml")
        self.assertIsNone(config_path("status", None, missing))
        self.assertEqual(INSTALLED_CONFIG, "/etc/postfix-mtasts/postfix-mtasts.toml")
