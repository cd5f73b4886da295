"""The HTTPS report receiver in the real daemon (issue 14; RFC 8460 §3,
§5.3): a sender POSTs gzip reports over TLS, checking the daemon's
certificate against the test CA; ``postfix-mtasts reports`` then lists
them from the store; an oversized POST is refused while Postfix's lookups
go on being answered.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .addresses import MTA_IP
from .daemonctl import ask, socketmap, start_daemon
from .world import Proc, World

PORT = 8433
RECEIVER_PORT = 8434
METRICS_PORT = 8435
HOST = "tlsrpt.receiver.test"
RECORD = f"{HOST}. IN A {MTA_IP}"
URL = f"https://{HOST}:{RECEIVER_PORT}/tlsrpt"
CLIENT = Path(__file__).resolve().parent / "clients" / "tlsrpt_post.py"
SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "tlsrpt"
    / "google.com!example.com!1732838400!1732924799.json"
)
COUNT = 200
#: The receiver's cap on a body as sent; the oversized POSTs pass it.
MAX_BODY = 65536


@pytest.fixture(scope="module")
def daemon(world: World) -> Iterator[tuple[Proc, Path]]:
    world.reset()
    world.dns.add(RECORD)
    cert = world.pki.cert(HOST)
    store = world.work / "receiver" / "received.sqlite3"
    extra = (
        "[reports]\n"
        f'endpoint = "ssl:{RECEIVER_PORT}:privateKey={cert}:interface={MTA_IP}"\n'
        f'store = "{store}"\n'
        f"max_body_bytes = {MAX_BODY}\n"
        f'\n[metrics]\nendpoint = "tcp:{METRICS_PORT}:interface=127.0.0.1"\n'
        "\n[refresh]\nenabled = false\n"
    )
    proc = start_daemon(world, "receiver", port=PORT, extra=extra)
    yield proc, store
    proc.stop()
    world.dns.remove(RECORD)


def client(world: World, *args: str) -> dict[str, Any]:
    done = world.run(
        "mta",
        [sys.executable, str(CLIENT), *args],
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def stored(world: World, store: Path) -> dict[str, Any]:
    done = world.run(
        "mta",
        [
            sys.executable,
            "-m",
            "postfix_mtasts",
            "reports",
            "--json",
            "--store",
            str(store),
        ],
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_reports_posted_over_tls_are_listed(
    world: World, daemon: tuple[Proc, Path]
) -> None:
    """COUNT gzip reports POSTed over HTTPS (RFC 8460 §5.3), the server's
    certificate verified against the test CA for the rua's host name, are
    each answered 201 and one event; POSTed again they are duplicates
    (200, §5.4 retries) and stored once; the reports command lists them,
    and /metrics counts the answers by outcome."""
    proc, store = daemon
    ca = str(world.pki.ca_pem)
    first = client(world, "reports", URL, ca, str(SAMPLE), str(COUNT), "8")
    assert first["codes"] == {"201": COUNT}, first
    again = client(world, "reports", URL, ca, str(SAMPLE), "3", "1")
    assert again["codes"] == {"200": 3}, again
    print(
        f"{COUNT} reports stored over TLS in {first['seconds']:.2f} s:"
        f" {COUNT / first['seconds']:.0f} reports/s"
    )
    [day] = stored(world, store)["days"]
    assert day["organization"] == "Google Inc."
    assert day["reports"] == COUNT
    output = proc.output()
    assert output.count("tls report stored") == COUNT
    assert output.count("tls report duplicate") == 3
    page = world.run(
        "mta", ["curl", "-s", f"http://127.0.0.1:{METRICS_PORT}/metrics"], timeout=30
    ).stdout
    name = "postfix_mtasts_tls_reports_received_total"
    assert f'{name}{{outcome="stored"}} {COUNT}.0' in page, page
    assert f'{name}{{outcome="duplicate"}} 3.0' in page, page


def test_oversized_post_refused_lookups_answered(
    world: World, daemon: tuple[Proc, Path]
) -> None:
    """A POST declaring more than max_body_bytes is answered 413 before
    its body is sent; one sending it anyway is refused (413, or closed
    while it sends); a small body that is no report is a 400; nothing is
    stored and the socketmap listener answers throughout."""
    proc, store = daemon
    ca = str(world.pki.ca_pem)
    before = stored(world, store)
    declared = client(
        world,
        "declared",
        MTA_IP,
        str(RECEIVER_PORT),
        ca,
        HOST,
        str(100 * 1024 * 1024),
    )
    assert declared["status"].startswith("HTTP/1.1 413 "), declared
    _, answer = ask(world, "enforce.test", socketmap(PORT))
    assert answer.startswith("secure"), answer
    sent = client(world, "random", URL, ca, str(16 * MAX_BODY))
    print(f"oversized POST with its body: {sent}")
    assert sent.get("code") == 413 or "error" in sent, sent
    _, answer = ask(world, "enforce.test", socketmap(PORT))
    assert answer.startswith("secure"), answer
    garbage = client(world, "random", URL, ca, "1000")
    assert garbage == {"code": 400}, garbage  # no report: refused, §7
    assert stored(world, store) == before
    assert "tls report refused status=413" in proc.output()
    assert proc.alive()
