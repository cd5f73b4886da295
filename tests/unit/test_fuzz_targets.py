# -*- test-case-name: tests.unit.test_fuzz_targets -*-
"""The fuzz targets' short CI budget (issue 9 item 5; spec F9, C19, E13).

For every target in fuzz/: the whole kept corpus replays in-process
without a broken contract, the corpus stays small, and a libFuzzer run of
a few thousand fresh inputs (atheris, in a subprocess, fixed seed) ends
with exit status 0.  The targets' checks have teeth: handed what a broken
parser would return, they raise ContractError.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from fuzz import CORPUS_DIR, TARGETS, load
from fuzz.contract import ContractError, chunked, txt_rrset
from fuzz.postfix_attrs import PolicyValueError, read_policy_value
from fuzz.targets import entry as entry_target
from fuzz.targets import nexthop as nexthop_target
from fuzz.targets import policy as policy_target
from fuzz.targets import socketmap as socketmap_target
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Policy, parse_policy
from postfix_mtasts.core.socketmap import NetstringDecoder

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS_DIR = ROOT / "fuzz" / "regressions"
#: Inputs per target in CI: a few seconds each at the targets' exec/s.
CI_RUNS = 20_000
#: Corpus bounds: minimised with -merge=1, small meaningful files only.
MAX_CORPUS_FILES = 300
MAX_CORPUS_FILE_BYTES = 16_384


if TYPE_CHECKING:
    _Base = SynchronousTestCase
else:
    _Base = object


class _TargetTests(_Base):
    """One fuzz target's CI budget; subclasses name the target."""

    target: str

    def test_corpus_replays_clean(self) -> None:
        """Every kept input runs through the target and its parser keeps its
        contract: no escaping exception, no ContractError."""
        one_input = load(self.target)
        files = sorted((CORPUS_DIR / self.target).iterdir())
        self.assertGreater(len(files), 0)
        for path in files:
            try:
                one_input(path.read_bytes())
            except Exception as error:  # name the file in the failure
                self.fail(f"{path.relative_to(ROOT)}: {error!r}")

    def test_regressions_replay_clean(self) -> None:
        """Every input that once broke the target's parser (kept in
        fuzz/regressions/, never merged away) now keeps its contract."""
        one_input = load(self.target)
        folder = REGRESSIONS_DIR / self.target
        for path in sorted(folder.iterdir()) if folder.exists() else []:
            try:
                one_input(path.read_bytes())
            except Exception as error:  # name the file in the failure
                self.fail(f"{path.relative_to(ROOT)}: {error!r}")

    def test_corpus_is_small(self) -> None:
        """The kept corpus is at most 300 files of at most 16 KiB each."""
        files = list((CORPUS_DIR / self.target).iterdir())
        self.assertLessEqual(len(files), MAX_CORPUS_FILES)
        for path in files:
            self.assertLessEqual(path.stat().st_size, MAX_CORPUS_FILE_BYTES, path)

    def test_short_libfuzzer_run(self) -> None:
        """A coverage-guided run of 20,000 inputs from the corpus (fixed
        seed) finds no crash: exit status 0."""
        if importlib.util.find_spec("atheris") is None:
            raise SkipTest("atheris is not installed (pip install atheris)")
        work = Path(tempfile.mkdtemp(prefix="fuzz-"))
        self.addCleanup(shutil.rmtree, work, ignore_errors=True)
        done = subprocess.run(
            [
                sys.executable, "-m", "fuzz.run", self.target,
                f"-runs={CI_RUNS}", "-seed=1", "-timeout=10", "-rss_limit_mb=1024",
                f"-artifact_prefix={work}/", str(work), str(CORPUS_DIR / self.target),
            ],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stdout[-3000:])
        self.assertIn(f"#{CI_RUNS}\tDONE", done.stdout)


class SocketmapFuzzTargetTests(_TargetTests, SynchronousTestCase):
    """socketmap decoder and request parser, whole and chunked (G2-G7, F9)."""

    target = "socketmap"


class TcptableFuzzTargetTests(_TargetTests, SynchronousTestCase):
    """tcp_table line decoder, requests and %XX quoting (G15-G17, F9)."""

    target = "tcptable"


class NexthopFuzzTargetTests(_TargetTests, SynchronousTestCase):
    """Key classification: only normalised names leave it (G8-G12, F8)."""

    target = "nexthop"


class RecordFuzzTargetTests(_TargetTests, SynchronousTestCase):
    """The _mta-sts TXT record parser (A2-A14)."""

    target = "record"


class TlsrptFuzzTargetTests(_TargetTests, SynchronousTestCase):
    """The checker's _smtp._tls TXT record parser (H17, I)."""

    target = "tlsrpt"


class PolicyFuzzTargetTests(_TargetTests, SynchronousTestCase):
    """Policy bodies, and the attributes Postfix reads in the reply built
    from them (C1-C19, G18-G28)."""

    target = "policy"


class EntryFuzzTargetTests(_TargetTests, SynchronousTestCase):
    """Stored cache entries: untrusted, validated like a fetch (E1, E13)."""

    target = "entry"


class DnsreplyFuzzTargetTests(_TargetTests, SynchronousTestCase):
    """DNS reply octets: one DnsReplyError or what dnspython reads (A11, A15)."""

    target = "dnsreply"


class LayoutTests(SynchronousTestCase):
    """How the targets read their inputs and judge what they see."""

    def test_every_target_is_tested(self) -> None:
        """Each target in fuzz.TARGETS has its CI budget class here."""
        tested = {case.target for case in _TargetTests.__subclasses__()}
        self.assertEqual(tested, set(TARGETS))

    def test_chunked_layout(self) -> None:
        """<selector> <n> <n sizes> <stream>: n modulo 8, the rest is the
        last chunk, a short input is zero-padded (F9)."""
        self.assertEqual(chunked(b"\x07\x02\x01\x00abcd"), (7, [b"a", b"", b"bcd"]))
        self.assertEqual(chunked(b"\x00\x09\x03xyz"), (0, [b"xyz", b""]))
        self.assertEqual(chunked(b""), (0, [b""]))

    def test_txt_rrset_layout(self) -> None:
        """<record separator> <string separator> <payload> (A9)."""
        self.assertEqual(
            txt_rrset(b"\n|v=STSv1; i|d=1\nv=spf1"),
            [[b"v=STSv1; i", b"d=1"], [b"v=spf1"]],
        )
        self.assertEqual(txt_rrset(b"\n\n|a|b"), [[b"|a|b"]])
        self.assertEqual(txt_rrset(b"\n|"), [])

    def test_decoders_compared_with_their_error(self) -> None:
        """The socketmap target's decode() keeps the payloads before a
        framing error and names the error (G2, F9)."""
        stream = b"3:abc,0:,1:x;"
        self.assertEqual(
            socketmap_target.decode([stream], 10),
            ((b"abc", b""), "missing ',' after the payload"),
        )
        self.assertEqual(
            socketmap_target.decode([stream[:5], stream[5:]], 10),
            socketmap_target.decode([bytes([b]) for b in stream], 10),
        )
        decoder = NetstringDecoder(max_length=10)
        self.assertEqual(decoder.feed(stream[:9]), [b"abc", b""])

    def test_read_policy_value_as_postfix(self) -> None:
        """Postfix's reading of a policy value (G18): separators outside
        braces split, braces nest, {} tokens are unwrapped and trimmed."""
        level, attributes = read_policy_value(
            "secure match=a:.b,servername=hostname"
            " { policy_string = x: { y } z } policy_type=sts"
        )
        self.assertEqual(level, "secure")
        self.assertEqual(
            attributes,
            [
                ("match", "a:.b"),
                ("servername", "hostname"),
                ("policy_string", "x: { y } z"),
                ("policy_type", "sts"),
            ],
        )

    def test_read_policy_value_refuses(self) -> None:
        """What Postfix refuses is an error: no '=', text after '}', an
        unclosed brace, an empty value (G18)."""
        for text in ("secure match", "secure {a=b}c", "secure { a=b", ""):
            with self.assertRaises(PolicyValueError, msg=text):
                read_policy_value(text)

    def test_violation_is_an_assertion(self) -> None:
        """A broken contract is an AssertionError, so libFuzzer reports it
        as a crash like any escaping exception."""
        self.assertTrue(issubclass(ContractError, AssertionError))


class TeethTests(SynchronousTestCase):
    """Each check raises on what a parser that broke its contract would
    return, so a clean run means something."""

    def policy(self) -> Policy:
        body = b"version: STSv1\nmode: enforce\nmx: mx.example\nmax_age: 1\n"
        policy = parse_policy(body)
        assert isinstance(policy, Policy)
        return policy

    def test_injected_attribute(self) -> None:
        """A reply with one attribute more than meant is refused (G18, G27)."""
        meant = [("match", "mx.example"), ("servername", "hostname")]
        policy_target.check_value(
            "secure match=mx.example servername=hostname", [meant]
        )
        for text in (
            "secure match=mx.example servername=hostname policy_failure=x",
            "secure match=mx.example servername=hostname { policy_string = a } b=c",
            "may match=mx.example servername=hostname",
        ):
            with self.assertRaises(ContractError, msg=text):
                policy_target.check_value(text, [meant])

    def test_untrusted_entry_fields(self) -> None:
        """An entry with a NaN time, an unnormalised domain, a bad id or a
        policy its lines do not say is refused (E1, E13, A4, C19)."""
        good = CacheEntry.fetched("example.com", "abc", self.policy(), 1.8e9)
        entry_target.check_entry(good)
        policy = self.policy()
        for bad in (
            CacheEntry("example.com", "abc", policy, float("nan"), 1.0, 1.0),
            CacheEntry("Example.COM.", "abc", policy, 1.0, 2.0, 1.0),
            CacheEntry("example.com", "a-b", policy, 1.0, 2.0, 1.0),
            CacheEntry(
                "example.com", "abc", Policy(policy.mode, 5, (), policy.lines), 1, 6, 1
            ),
        ):
            with self.assertRaises(ContractError, msg=repr(bad)):
                entry_target.check_entry(bad)

    def test_unsafe_names(self) -> None:
        """A name that is not lower-case LDH with two labels, or is an
        address, would not pass as a DNS query name (G9, F8, D2)."""
        nexthop_target.check_name("mx.example.com")
        for name in ("Example.com", "localhost", "com", "a_b.example", "1.2.3.4"):
            with self.assertRaises(ContractError, msg=name):
                nexthop_target.check_name(name)
