"""What ``serve`` imports before its listeners listen (issue 13).

Each check runs a fresh interpreter, since this one has imported
everything by now; it prints the modules of interest found in sys.modules.
"""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

import postfix_mtasts
from postfix_mtasts.cli import main

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(postfix_mtasts.__file__)))

#: Loaded after the listeners listen, or by other commands only.
LATER = [
    "treq",
    "twisted.web.client",
    "twisted.web.server",
    "dns.message",
    "dns.resolver",
    "prometheus_client",
    *[
        f"postfix_mtasts.{name}"
        for name in (
            "dnsclient",
            "fetch",
            "hostnames",
            "https",
            "mxfacts",
            "resolver",
            "metrics",
            "reportreceiver",
            "reportsite",
            "reportwriter",
            "reportstore",
            "dnssecprobe",
            "control",
            "controlsocket",
            "importsession",
            "checker",
            "cli.cache",
            "cli.check",
            "cli.offline",
            "cli.query",
            "cli.status",
        )
    ],
]


def last_json(script: str) -> Any:
    """Run ``script`` in a fresh interpreter; the JSON of its last line."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": CHECKOUT},
        cwd=CHECKOUT,
    )
    return json.loads(done.stdout.splitlines()[-1])


class StartupImportTests(SynchronousTestCase):
    def test_serve_loads_no_fetch_stack_before_listening(self) -> None:
        """Parsing ``serve``'s command line and loading what it runs up to
        its listeners loads neither the fetch stack (treq, twisted.web,
        dnspython), the metrics server, nor any other command's module
        (issue 13: start-up within about 100 ms of bare Twisted)."""
        code = (
            "from postfix_mtasts.cli import build_parser\n"
            "build_parser().parse_args(['serve'])\n"
            "import postfix_mtasts.cli.serve, postfix_mtasts.cache.sqlite\n"
            # what run_serve's main() loads before start_daemon listens
            "import postfix_mtasts.storage, postfix_mtasts.listeners\n"
            "import postfix_mtasts.service\n"
        )
        script = f"import sys, json\n{code}print(json.dumps([n for n in {LATER!r} if n in sys.modules]))"
        self.assertEqual(last_json(script), [])

    def test_parts_cover_the_network_build(self) -> None:
        """Once the modules in network.PARTS are imported (off the reactor
        thread at start), building the DNS and HTTPS parts imports nothing
        more: the build does not stall the reactor thread on an import
        (issue 13), also with MX facts on (match = "mx", D13)."""
        code = (
            "import importlib\n"
            "from twisted.internet.testing import MemoryReactorClock\n"
            "from postfix_mtasts.core.config import parse_config\n"
            "from postfix_mtasts.core.tally import NetworkCounts\n"
            "from postfix_mtasts.network import PARTS, make_network\n"
            "for name in PARTS: importlib.import_module(name)\n"
            'config = parse_config(\'[maps.postfix]\\nmatch = "mx"\\n'
            '[dns]\\nnameservers = ["127.0.0.1"]\\n\')\n'
            "before = set(sys.modules)\n"
            "built = make_network(config, MemoryReactorClock(), NetworkCounts())\n"
            "assert built.facts is not None\n"
            "print(json.dumps(sorted(set(sys.modules) - before)))\n"
        )
        self.assertEqual(last_json(f"import sys, json\n{code}"), [])


class CollectionTests(SynchronousTestCase):
    def test_main_leaves_collection_on(self) -> None:
        """main() turns garbage collection off only while a command starts:
        it is on again when any command returns, here a serve that stops
        at its configuration (exit status 2) and a status that cannot
        reach the daemon (issue 13)."""
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "bad.toml")
            with open(bad, "w") as f:
                f.write("[nonsense]\n")
            with redirect_stderr(io.StringIO()), redirect_stdout(io.StringIO()):
                self.assertEqual(main(["serve", "--config", bad]), 2)
                self.assertTrue(gc.isenabled())
                status = main(["status", "--socket", os.path.join(d, "none.sock")])
        self.assertNotEqual(status, 0)
        self.assertTrue(gc.isenabled())
