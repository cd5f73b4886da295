"""`postfix-mtasts check` on policy files the daemon's tolerant reader
accepts but other senders may reject (spec H10, H11, H18; issue 12).

Real DNS, a real HTTPS policy host with the test CA and the world's good
MX host (mx1.enforce.test).  Each `tol-*` domain is well configured
(TLSRPT, max_age two weeks) except for its policy file, which departs from
the RFC 8461 §3.2 grammar in the ways real policy hosts were seen to: a
stray line after the last key, every line of a `mode: none` policy
indented, an IP address among the mx values, blank lines.  The checker must name each
line, say what senders may do with it, and give the verdict that follows.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .world import MX_GOOD, World

MX = {"mx1.enforce.test": MX_GOOD}
TWO_WEEKS = 1209600
Report = dict[str, Any]

POLICIES = {
    # An editor's leftover after the last key.
    "tol-stray.test": (
        "version: STSv1\r\nmode: enforce\r\nmx: mx1.enforce.test\r\n"
        f"max_age: {TWO_WEEKS}\r\nthanks for reading\r\n"
    ),
    # The owner's removal step, with every line indented.
    "tol-none.test": "  version: STSv1\n  mode: none\n  max_age: 86400\n",
    # An interior blank line and a trailing one: most senders skip them.
    "tol-blank.test": (
        "version: STSv1\nmode: enforce\n\nmx: mx1.enforce.test\n"
        f"max_age: {TWO_WEEKS}\n\n"
    ),
    # An IP address written as an mx value beside the host name.
    "tol-mx.test": (
        "version: STSv1\nmode: enforce\nmx: mx1.enforce.test\nmx: 10.253.3.10\n"
        f"max_age: {TWO_WEEKS}\n"
    ),
}


def run_check(world: World, domain: str, *args: str) -> tuple[int, str]:
    argv = [sys.executable, "-m", "postfix_mtasts", "check", *args, domain]
    proc = world.run("mta", argv, timeout=60)
    assert proc.stdout, proc.stderr
    return proc.returncode, proc.stdout


@pytest.fixture(scope="module")
def reports(world: World) -> Iterator[dict[str, tuple[int, Report]]]:
    """Every tol- domain checked once with --json, concurrently."""
    with world.dns.batch():
        for domain, policy in POLICIES.items():
            world.publish(domain, mx=MX, policy=policy)
            world.dns.records.append(
                f'_smtp._tls.{domain}. IN TXT "v=TLSRPTv1; rua=mailto:tls@{domain}"'
            )
    try:
        with ThreadPoolExecutor(len(POLICIES)) as pool:
            futures = {d: pool.submit(run_check, world, d, "--json") for d in POLICIES}
            yield {
                d: (rc, json.loads(out))
                for d, (rc, out) in ((d, f.result()) for d, f in futures.items())
            }
    finally:
        with world.dns.batch():
            for domain in POLICIES:
                world.unpublish(domain)


def problems(report: Report) -> list[tuple[str, str, str]]:
    return [
        (c["rule"], c["check"], c["status"])
        for c in report["checks"]
        if c["status"] not in ("PASS", "INFO")
    ]


def check(report: Report, name: str) -> list[Report]:
    return [c for c in report["checks"] if c["check"] == name]


def test_stray_line_fails(reports: dict[str, tuple[int, Report]]) -> None:
    """A stray line without ':' after the last key: H10 policy-stray-line
    FAIL naming line 5, policy-syntax 'readable, but not RFC 8461 grammar'
    FAIL, broken, exit 1; the mode read is still shown (H10, C2)."""
    rc, report = reports["tol-stray.test"]
    assert problems(report) == [
        ("H10", "policy-syntax", "FAIL"),
        ("H10", "policy-stray-line", "FAIL"),
    ]
    [stray] = check(report, "policy-stray-line")
    assert "line 5 'thanks for reading' is not 'key: value'" in stray["message"]
    assert "postfix-mtasts accepts it and skips it" in stray["message"]
    assert "reject the whole policy" in stray["message"]
    assert stray["fix"].startswith("remove the line")
    [syntax] = check(report, "policy-syntax")
    assert "readable, but not RFC 8461 grammar" in syntax["message"]
    assert (rc, report["exit_status"], report["verdict"]) == (1, 1, "broken")
    assert report["mode"] == "enforce"


def test_blank_lines_warn(reports: dict[str, tuple[int, Report]]) -> None:
    """Interior and trailing blank lines: one WARN each (lines 3 and 6) and
    policy-syntax WARN, never 'valid policy'; nothing fails, exit 0 (H10,
    H11, C3)."""
    rc, report = reports["tol-blank.test"]
    assert problems(report) == [
        ("H10", "policy-syntax", "WARN"),
        ("H11", "policy-blank-line", "WARN"),
        ("H11", "policy-trailing-blank", "WARN"),
    ]
    [blank] = check(report, "policy-blank-line")
    assert blank["message"].startswith("line 3 '' is blank")
    [trailing] = check(report, "policy-trailing-blank")
    assert trailing["message"].startswith("line 6 '' is blank")
    [syntax] = check(report, "policy-syntax")
    assert "valid policy" not in syntax["message"]
    assert (rc, report["exit_status"]) == (0, 0)
    assert report["verdict"] != "broken"


def test_indented_mode_none_is_broken(
    reports: dict[str, tuple[int, Report]],
) -> None:
    """A mode none policy with every line indented: one FAIL per line, the
    first (and H18) saying that senders rejecting it keep their cached
    policy (RFC 8461 §8.3); the verdict is broken, exit 1 (H10, H11, H18,
    C2)."""
    rc, report = reports["tol-none.test"]
    assert problems(report) == [
        ("H10", "policy-syntax", "FAIL"),
        ("H11", "policy-indented", "FAIL"),
        ("H11", "policy-indented", "FAIL"),
        ("H11", "policy-indented", "FAIL"),
    ]
    indented = check(report, "policy-indented")
    for number, (line, found) in enumerate(
        zip(POLICIES["tol-none.test"].splitlines(), indented, strict=True), 1
    ):
        assert f"line {number} {line!r} begins with whitespace" in found["message"]
        blocked = "removal path (RFC 8461 §8.3) is blocked" in found["message"]
        assert blocked == (number == 1)  # said once, on the first line
    [mode] = check(report, "policy-mode")
    assert "keep their cached policy" in mode["message"]
    assert (rc, report["exit_status"]) == (1, 1)
    assert (report["verdict"], report["mode"]) == ("broken", "none")
    assert "H11 policy-indented" in report["verdict_reason"]


def test_dropped_mx_fails_but_coverage_is_judged(
    reports: dict[str, tuple[int, Report]],
) -> None:
    """An IP among the mx values: H10 policy-mx-dropped FAIL on line 4; the
    valid mx still covers the MX host (H14 PASS); broken, exit 1 (H10, C13)."""
    rc, report = reports["tol-mx.test"]
    assert problems(report) == [
        ("H10", "policy-syntax", "FAIL"),
        ("H10", "policy-mx-dropped", "FAIL"),
    ]
    [dropped] = check(report, "policy-mx-dropped")
    assert "line 4 'mx: 10.253.3.10'" in dropped["message"]
    assert "looks like an IP address" in dropped["message"]
    assert "no IP address" in dropped["fix"]
    assert [c["status"] for c in check(report, "mx-coverage")] == ["PASS"]
    assert (rc, report["verdict"]) == (1, "broken")


def test_text_output_names_the_line(world: World) -> None:
    """Without --json the departure is one `RULE STATUS message — fix` line
    and the verdict names the check (H10)."""
    world.publish("tol-text.test", mx=MX, policy=POLICIES["tol-mx.test"])
    try:
        rc, out = run_check(world, "tol-text.test")
    finally:
        world.unpublish("tol-text.test")
    assert rc == 1
    [line] = [
        x for x in out.splitlines() if "policy-mx-dropped" not in x and "line 4" in x
    ]
    assert line.startswith("H10 FAIL  ")
    assert " — remove the line" in line
    assert "H10 policy-mx-dropped" in out.splitlines()[-1]
