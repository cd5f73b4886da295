# -*- test-case-name: tests.unit.test_checker_suggest -*-
"""``check --suggest``: the policy file and DNS records that fit the domain's
current MX hosts, ready to publish (spec H.2).  Pure.

Testing mode, ``max_age: 604800`` (the guide's testing range), exact MX
names (no ``*.``: RFC 8461 §10.4), ``version`` first, LF line ends, and a
fresh id made of the UTC time (letters and digits only, A4).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from attrs import frozen

from postfix_mtasts.core.policyhost import policy_url
from postfix_mtasts.core.value import Value

__all__ = ["SUGGESTED_MAX_AGE_S", "Suggestion", "new_policy_id", "suggest"]

SUGGESTED_MAX_AGE_S = 604800


@frozen(repr=False)
class Suggestion(Value):
    """What to publish: the policy file, DNS records (zone-file lines) and hints."""

    policy_id: str
    policy_url: str
    policy: str
    records: tuple[str, ...]
    hints: tuple[str, ...]


def new_policy_id(now: float) -> str:
    """A fresh TXT id: the UTC time as ``20261129T120000`` (spec H.2, A4)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S")


def suggest(
    domain: str, mx_hosts: Sequence[str], now: float, tlsrpt_record: str | None = None
) -> Suggestion | None:
    """The suggested configuration, or None when there is no MX host to list.

    ``tlsrpt_record`` is the domain's valid TLSRPT record text, kept as it is;
    without one a ``mailto:tlsrpt@<domain>`` record is proposed.
    """
    if not mx_hosts:
        return None
    policy_id = new_policy_id(now)
    lines = ["version: STSv1", "mode: testing"]
    lines += [f"mx: {host}" for host in mx_hosts]
    lines.append(f"max_age: {SUGGESTED_MAX_AGE_S}")
    tlsrpt = tlsrpt_record or f"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"
    records = (
        f'_mta-sts.{domain}. 3600 IN TXT "v=STSv1; id={policy_id}"',
        f'_smtp._tls.{domain}. 3600 IN TXT "{tlsrpt}"',
        f"mta-sts.{domain}. 3600 IN CNAME <your web host>.  ; or A/AAAA records",
    )
    url = policy_url(domain)
    hints = (
        f"Serve the policy file at {url} with status 200, no redirect,"
        " 'Content-Type: text/plain; charset=utf-8', and a certificate for"
        f" mta-sts.{domain} from a public CA ('Cache-Control: max-age=60' helps"
        " behind proxies).",
        "Publish the policy file first, then the _mta-sts TXT record: on every"
        " later change update the file first, then give the TXT record a new id"
        " (RFC 8461 §8.1).",
        "Run in testing mode for about two weeks and read the TLSRPT reports; fix"
        " what they show, then switch to 'mode: enforce' and raise max_age"
        " (1209600 or more, at most 31557600), with a new id.",
        "Every MX host must offer STARTTLS with TLS 1.2 or later and an unexpired"
        " certificate from a trusted CA that names the MX host itself.",
        "Each domain needs its own _mta-sts record and its own"
        " https://mta-sts.<domain>/ host, even if the policies are the same.",
        "To withdraw MTA-STS later: publish 'mode: none' with a new id, wait out the"
        " old max_age, then delete the records (RFC 8461 §8.3).",
        "Sending with Postfix: smtp_tls_policy_maps ="
        " socketmap:inet:127.0.0.1:8461:postfix with postfix-mtasts serve, and"
        " smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt.",
    )
    return Suggestion(
        policy_id, url, "".join(f"{line}\n" for line in lines), records, hints
    )
