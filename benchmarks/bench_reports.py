"""Reading N TLS reports (RFC 8460) into the report store, then showing them.

No root, no network: everything happens in a temporary directory.  The
script writes ``--reports`` (10,000) reports of ``--senders`` organisations
over ``--days`` days for one policy domain, as senders deliver them: half
as mail messages in a maildir (``multipart/report`` with an
``application/tlsrpt+gzip`` attachment), half as ``.json.gz`` files.  Each
report carries an STS and a no-policy-found policy, and every fifth one
failure details on two MX hosts.  Then, each in a fresh process of the
tree's own ``python -m postfix_mtasts``:

- ``read``: ``reports --store S PATHS`` (read, validate, store, summarise);
- ``again``: the same command again (every report a duplicate);
- ``table``, ``json``, ``html``: the stored summary as a table, as
  ``--json``, and as ``--html FILE``, reading the store only.

Per step: wall time, reports per second (``read``, ``again``), CPU seconds
(user + system) and peak RSS of the process (``wait4``'s rusage), then one
JSON line.  Medians of ``--reps`` runs, each on a new store.

    .venv/bin/python benchmarks/bench_reports.py [--reports 10000]
        [--senders 40] [--days 92] [--reps 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import mailbox
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

DOMAIN = "example.com"
MX_HOSTS = ("mx1.example.com", "mx2.example.com")
STEPS = ("read", "again", "table", "json", "html")
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def report(n: int, senders: int, days: int) -> dict[str, Any]:
    """The n-th report: sender n % senders, day n // senders."""
    org = f"Sender {n % senders:03d}"
    day = (n // senders) % days
    start = datetime.now(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    ) - timedelta(days=day + 1)
    failures = []
    if n % 5 == 0:
        failures = [
            {
                "result-type": "certificate-expired",
                "sending-mta-ip": "203.0.113.7",
                "receiving-mx-hostname": MX_HOSTS[1],
                "receiving-ip": "192.0.2.26",
                "failed-session-count": 1 + n % 7,
            },
            {
                "result-type": "starttls-not-supported",
                "sending-mta-ip": "203.0.113.8",
                "receiving-mx-hostname": MX_HOSTS[0],
                "receiving-ip": "192.0.2.25",
                "failed-session-count": 1 + n % 3,
            },
        ]
    return {
        "organization-name": org,
        "date-range": {
            "start-datetime": start.strftime(STAMP),
            "end-datetime": (start + timedelta(seconds=86399)).strftime(STAMP),
        },
        "contact-info": f"tlsrpt@sender{n % senders}.example.net",
        "report-id": f"{start:%Y-%m-%d}-{n}@sender{n % senders}.example.net",
        "policies": [
            {
                "policy": {
                    "policy-type": "sts",
                    "policy-string": [
                        "version: STSv1",
                        "mode: testing",
                        *(f"mx: {host}" for host in MX_HOSTS),
                        "max_age: 604800",
                    ],
                    "policy-domain": DOMAIN,
                    "mx-host": list(MX_HOSTS),
                },
                "summary": {
                    "total-successful-session-count": 100 + n % 50,
                    "total-failure-session-count": sum(
                        f["failed-session-count"] for f in failures
                    ),
                },
                "failure-details": failures,
            },
            {
                "policy": {
                    "policy-type": "no-policy-found",
                    "policy-domain": f"sub.{DOMAIN}",
                },
                "summary": {
                    "total-successful-session-count": n % 11,
                    "total-failure-session-count": 0,
                },
            },
        ],
    }


def as_mail(body: dict[str, Any]) -> EmailMessage:
    msg = EmailMessage()
    submitter = body["contact-info"].split("@", 1)[1]
    msg["From"] = f"tlsrpt-noreply@{submitter}"
    msg["To"] = f"tlsrpt@{DOMAIN}"
    msg["Subject"] = (
        f"Report Domain: {DOMAIN} Submitter: {submitter}"
        f" Report-ID: <{body['report-id']}>"
    )
    msg["TLS-Report-Domain"] = DOMAIN
    msg["TLS-Report-Submitter"] = submitter
    msg.set_content(f"This is an aggregate TLS report from {submitter}.")
    msg.add_attachment(
        gzip.compress(json.dumps(body).encode()),
        maintype="application",
        subtype="tlsrpt+gzip",
        filename=f"{submitter}!{DOMAIN}!{body['report-id']}.json.gz",
    )
    msg.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"')
    return msg


def write_reports(work: Path, count: int, senders: int, days: int) -> list[Path]:
    maildir = work / "Maildir"
    files = work / "files"
    files.mkdir()
    box = mailbox.Maildir(str(maildir), create=True)
    for n in range(count):
        body = report(n, senders, days)
        if n % 2:
            (files / f"{n}.json.gz").write_bytes(
                gzip.compress(json.dumps(body).encode())
            )
        else:
            box.add(as_mail(body))
    return [maildir, files]


def run(argv: list[str], tree: Path) -> dict[str, float]:
    """One process of the tree's CLI: wall s, CPU s and peak RSS MiB."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "postfix_mtasts", *argv]
    started = time.monotonic()
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {status}: {stderr}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reports", type=int, default=10_000)
    p.add_argument("--senders", type=int, default=40)
    p.add_argument("--days", type=int, default=92)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--daemon-python-path",
        default=str(Path(__file__).resolve().parent.parent),
        metavar="DIR",
        help="source tree to run (default: this checkout)",
    )
    args = p.parse_args()
    tree = Path(args.daemon_python_path).resolve()
    results: dict[str, list[dict[str, float]]] = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        work = Path(tmp)
        paths = [
            str(p) for p in write_reports(work, args.reports, args.senders, args.days)
        ]
        size = sum(
            f.stat().st_size for d in paths for f in Path(d).rglob("*") if f.is_file()
        )
        print(f"{args.reports} reports, {size / 2**20:.1f} MiB as mailed/stored")
        for rep in range(args.reps):
            store = str(work / f"store-{rep}.sqlite3")
            base = ["reports", "--store", store]
            argvs = {
                "read": [*base, *paths],
                "again": [*base, *paths],
                "table": base,
                "json": [*base, "--json"],
                "html": [*base, "--html", str(work / "report.html")],
            }
            for step in STEPS:
                figures = run(argvs[step], tree)
                results[step].append(figures)
                rate = (
                    f" {args.reports / figures['wall_s']:7.0f} reports/s"
                    if step in ("read", "again")
                    else ""
                )
                print(
                    f"rep {rep} {step:>5}: {figures['wall_s']:6.2f} s"
                    f" (CPU {figures['cpu_s']:6.2f} s){rate},"
                    f" peak RSS {figures['rss_mib']:6.1f} MiB"
                )
    summary: dict[str, Any] = {"reports": args.reports, "reps": args.reps}
    print(f"medians of {args.reps}:")
    for step in STEPS:
        medians = {
            key: round(statistics.median(r[key] for r in results[step]), 3)
            for key in ("wall_s", "cpu_s", "rss_mib")
        }
        if step in ("read", "again"):
            medians["reports_per_s"] = round(args.reports / medians["wall_s"])
        summary[step] = medians
        print(f"  {step:>5}: {medians}")
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
