"""TLS reports (RFC 8460 §4.4) for the report tests: the files in
tests/data/tlsrpt/ (shaped as big senders mail them) and a builder of
small valid reports to break one field at a time."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data" / "tlsrpt"
GOOGLE = DATA / "google.com!example.com!1732838400!1732924799.json"
MICROSOFT = (
    DATA / "microsoft.com!example.com!1732838400!1732924799!133773312000000000.json"
)
GOOGLE_EML = DATA / "google-report.eml"

#: 2024-11-29T00:00:00Z, the day of the sample reports.
DAY_START = 1_732_838_400.0

_MINIMAL: dict[str, Any] = {
    "organization-name": "Sender Org",
    "date-range": {
        "start-datetime": "2024-11-29T00:00:00Z",
        "end-datetime": "2024-11-29T23:59:59Z",
    },
    "contact-info": "tlsrpt@sender.example",
    "report-id": "r-1",
    "policies": [
        {
            "policy": {
                "policy-type": "sts",
                "policy-string": ["version: STSv1", "mode: enforce"],
                "policy-domain": "example.com",
                "mx-host": ["mx.example.com"],
            },
            "summary": {
                "total-successful-session-count": 10,
                "total-failure-session-count": 1,
            },
            "failure-details": [
                {
                    "result-type": "certificate-expired",
                    "receiving-mx-hostname": "mx.example.com",
                    "receiving-ip": "192.0.2.1",
                    "failed-session-count": 1,
                }
            ],
        }
    ],
}


def report_dict(**top: Any) -> dict[str, Any]:
    """A valid report as a dict; keyword arguments replace top-level
    fields (``report_id="x"`` sets "report-id")."""
    out = copy.deepcopy(_MINIMAL)
    for key, value in top.items():
        out[key.replace("_", "-")] = value
    return out


def report_bytes(**top: Any) -> bytes:
    return json.dumps(report_dict(**top)).encode()
