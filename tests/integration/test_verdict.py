"""`postfix-mtasts reports --verdict DOMAIN` end to end (issue 14).

TLS reports (RFC 8460 §4.4) generated for the last days are read into a
report store, then judged beside a live check of the domain against the
namespace world's real DNS, policy host and MX host, as `check` makes it.
The domain is in testing mode with TLSRPT, served by the world's good MX
(mx1.enforce.test, a certificate for that name): two weeks of clean
reports of two senders make it ready for enforce (the guide); a few days
of one sender, with failures on a covered host and on a host the policy
does not name, do not (RFC 8461 §4.1, §5).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .world import MX_GOOD, World

DOMAIN = "vrd-testing.test"
MX = "mx1.enforce.test"  # MX_GOOD, whose certificate names it
UNCOVERED = f"mx9.{DOMAIN}"


@pytest.fixture(scope="module")
def testing_domain(world: World) -> Iterator[str]:
    """DOMAIN in testing mode, max_age one week, with a TLSRPT record."""
    with world.dns.batch():
        world.publish(DOMAIN, mode="testing", mx={MX: MX_GOOD}, max_age=604800)
        world.dns.records.append(
            f'_smtp._tls.{DOMAIN}. IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{DOMAIN}"'
        )
    try:
        yield DOMAIN
    finally:
        world.unpublish(DOMAIN)


def _report(
    days_ago: int, organization: str, failures: list[tuple[str, str, int]]
) -> dict[str, Any]:
    """One daily report of ``organization`` for DOMAIN's testing policy."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days_ago)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "organization-name": organization,
        "date-range": {
            "start-datetime": start.strftime(stamp),
            "end-datetime": (start + timedelta(seconds=86399)).strftime(stamp),
        },
        "contact-info": f"tlsrpt@{organization.split()[0].lower()}.example",
        "report-id": f"{organization}-{days_ago}",
        "policies": [
            {
                "policy": {
                    "policy-type": "sts",
                    "policy-string": [
                        "version: STSv1",
                        "mode: testing",
                        f"mx: {MX}",
                        "max_age: 604800",
                    ],
                    "policy-domain": DOMAIN,
                    "mx-host": [MX],
                },
                "summary": {
                    "total-successful-session-count": 40,
                    "total-failure-session-count": sum(n for _, _, n in failures),
                },
                "failure-details": [
                    {
                        "result-type": kind,
                        "receiving-mx-hostname": host,
                        "receiving-ip": MX_GOOD,
                        "failed-session-count": n,
                    }
                    for host, kind, n in failures
                ],
            }
        ],
    }


def _verdict(world: World, store: Path, reports: Path) -> tuple[int, dict[str, Any]]:
    argv = [
        sys.executable,
        "-m",
        "postfix_mtasts",
        "reports",
        "--store",
        str(store),
        "--verdict",
        DOMAIN,
        "--json",
        str(reports),
    ]
    proc = world.run("mta", argv, timeout=60)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _write(directory: Path, reports: list[dict[str, Any]]) -> Path:
    directory.mkdir()
    for n, report in enumerate(reports):
        (directory / f"{n}.json").write_text(json.dumps(report))
    return directory


def test_verdict_against_the_world(
    world: World, testing_domain: str, tmp_path: Path
) -> None:
    """Two weeks of clean reports of two senders and a clean live check of
    a testing-mode domain: ready for enforce, exit 0 (the guide).  Three
    days of one sender, with a certificate failure on the covered MX host
    and failures on a host the policy does not name: not ready, exit 1,
    most severe first (RFC 8460 §4.3, RFC 8461 §4.1)."""
    clean = [
        _report(day, organization, [])
        for day in range(1, 15)
        for organization in ("Sender One", "Sender Two")
    ]
    rc, ready = _verdict(
        world, tmp_path / "ready.sqlite3", _write(tmp_path / "clean", clean)
    )
    assert (rc, ready["verdict"], ready["findings"]) == (0, "ready-for-enforce", [])
    assert (ready["mode"], ready["live_verdict"]) == ("testing", "ready-for-enforce")
    assert len(ready["reports"]["days"]) == 14
    assert ready["reports"]["organizations"] == ["Sender One", "Sender Two"]

    failing = [
        _report(1, "Sender One", [(MX, "certificate-expired", 2)]),
        _report(2, "Sender One", [(UNCOVERED, "validation-failure", 5)]),
        _report(3, "Sender One", []),
    ]
    rc, not_ready = _verdict(
        world, tmp_path / "not-ready.sqlite3", _write(tmp_path / "failing", failing)
    )
    assert (rc, not_ready["verdict"], not_ready["exit_status"]) == (1, "not-ready", 1)
    assert [(f["rank"], f["code"], f["subject"]) for f in not_ready["findings"]] == [
        (30, "certificate-expired", MX),
        (40, "mx-not-covered", UNCOVERED),
        (50, "few-senders", DOMAIN),
        (60, "few-days", DOMAIN),
    ]
    assert not_ready["live_verdict"] == "ready-for-enforce"
