"""The postfix-mtasts(8) manual page (issue 11, install path): generated from
the argument parser, committed as man/postfix-mtasts.8, kept up to date, and
rendered by groff without a warning."""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cli import build_parser
from postfix_mtasts.cli.manpage import main, render, roff_escape

PAGE = Path(__file__).resolve().parents[2] / "man" / "postfix-mtasts.8"
REGENERATE = "python -m postfix_mtasts.cli.manpage man/postfix-mtasts.8"


def _groff(page: str, wide: bool = False) -> subprocess.CompletedProcess[str]:
    """groff's man renderer with every warning on (``-ww``), as ``man`` uses;
    ``wide``: lines of 300 columns, so that no phrase is broken."""
    width = ["-rLL=300n"] if wide else []
    return subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-Kutf8", *width],
        input=page,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


class CommittedPageTests(SynchronousTestCase):
    def test_committed_page_is_current(self) -> None:
        """The committed page is exactly what the generator makes from today's
        parser: an option added without regenerating fails here."""
        self.assertEqual(
            PAGE.read_text(encoding="utf-8"),
            render(build_parser()),
            f"man/postfix-mtasts.8 is stale: run {REGENERATE}",
        )

    def test_renders_without_warnings(self) -> None:
        """groff -ww renders the committed page with nothing on stderr (what
        ``man -l`` and ``man --warnings`` would complain about)."""
        proc = _groff(PAGE.read_text(encoding="utf-8"))
        self.assertEqual((proc.returncode, proc.stderr), (0, ""))
        self.assertIn("POSTFIX-MTASTS(8)", proc.stdout)

    def test_sections_an_admin_needs(self) -> None:
        """The page has the sections issue 11 asks for: configuration file,
        signals (HUP reloads, TERM stops), exit statuses 0/1/2, files."""
        text = _groff(render(build_parser()), wide=True).stdout
        for heading in (
            "SYNOPSIS",
            "COMMANDS",
            "CONFIGURATION FILE",
            "SIGNALS",
            "EXIT STATUS",
            "FILES",
            "SEE ALSO",
        ):
            self.assertIn(f"\n{heading}\n", _plain(text))
        plain = _plain(text)
        self.assertIn("SIGHUP", plain)
        self.assertIn("/etc/postfix-mtasts/postfix-mtasts.toml", plain)
        self.assertIn("RestartPreventExitStatus=2", plain)


class GeneratorTests(SynchronousTestCase):
    def test_main_writes_the_page(self) -> None:
        """``python -m postfix_mtasts.cli.manpage FILE`` writes the page to
        FILE, and to stdout without an argument."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "postfix-mtasts.8"
            self.assertEqual(main([str(path)]), 0)
            self.assertEqual(path.read_text(encoding="utf-8"), render(build_parser()))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(main([]), 0)
        self.assertEqual(out.getvalue(), render(build_parser()))

    def test_every_command_and_option(self) -> None:
        """Every subcommand and every option of the parser appears on the page
        (the page cannot drift from --help)."""
        plain = _plain(_groff(render(build_parser()), wide=True).stdout)
        for words, parser in _leaves(build_parser()):
            self.assertIn(" ".join(words), plain)
            for action in parser._actions:
                for flag in action.option_strings:
                    self.assertIn(flag, plain)

    def test_new_option_appears(self) -> None:
        """An option added to a parser shows in the synopsis and the command's
        section, with its metavar and help."""
        parser = argparse.ArgumentParser(prog="postfix-mtasts")
        commands = parser.add_subparsers(dest="command")
        serve = commands.add_parser("serve", help="run it")
        serve.add_argument("--pid-file", metavar="PATH", help="write the pid here")
        plain = _plain(_groff(render(parser), wide=True).stdout)
        self.assertIn("postfix-mtasts serve [--pid-file PATH]", plain)
        self.assertIn("write the pid here", plain)

    def test_default_expanded(self) -> None:
        """%(default)s in a help text is expanded, as --help does."""
        parser = argparse.ArgumentParser(prog="postfix-mtasts")
        commands = parser.add_subparsers(dest="command")
        sub = commands.add_parser("query", help="ask")
        sub.add_argument("--map", default="postfix", help="map (default: %(default)s)")
        self.assertIn(
            "map (default: postfix)", _plain(_groff(render(parser), wide=True).stdout)
        )

    def test_escape(self) -> None:
        """Text from help strings cannot become roff requests or escapes: a
        leading dot or quote is neutralised, backslashes and dashes escaped."""
        self.assertEqual(roff_escape(".TH x"), "\\&.TH x")
        self.assertEqual(roff_escape("'br"), "\\&'br")
        self.assertEqual(roff_escape("a\\fBb"), "a\\efBb")
        self.assertEqual(roff_escape("--x"), "\\-\\-x")
        parser = argparse.ArgumentParser(prog="postfix-mtasts")
        commands = parser.add_subparsers(dest="command")
        sub = commands.add_parser("serve", help="x")
        sub.add_argument("--x", help=".SH INJECTED\n.so /etc/passwd")
        proc = _groff(render(parser))
        self.assertEqual(proc.stderr, "")
        self.assertNotIn("\nINJECTED\n", _plain(proc.stdout))


def _plain(rendered: str) -> str:
    """groff's terminal output without overstrike (bold, underline)."""
    out = []
    i = 0
    while i < len(rendered):
        if rendered[i + 1 : i + 2] == "\b":
            i += 2
            continue
        out.append(rendered[i])
        i += 1
    return "".join(out)


def _leaves(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(((*words, name), sub))
                found.extend(_leaves(sub, (*words, name)))
    return found
