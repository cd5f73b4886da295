# -*- test-case-name: tests.unit.test_checker_mx -*-
"""The MX side: MX records (spec H13), coverage by the policy's ``mx``
patterns (H14, with the daemon's own :func:`~postfix_mtasts.core.mx.mx_matches`),
each MX host's STARTTLS session (H15), a handshake without SNI (H16) and
TLSA records (H19).  Pure.

A host that cannot be reached on port 25 is INCONCLUSIVE, not FAIL: from
here a timeout or a refusal cannot be told apart from port 25 being blocked
on the checker's own network (common on home and cloud networks), and
senders simply try the next MX.
"""

from __future__ import annotations

from collections.abc import Sequence

from postfix_mtasts.checker.facts import (
    AddressFacts,
    ConnectProblem,
    Found,
    MxFacts,
    MxHostFacts,
    ProbeFacts,
    Stage,
)
from postfix_mtasts.checker.model import Check, Status
from postfix_mtasts.checker.rules_tls import is_version_error, tls_checks
from postfix_mtasts.core.mx import matching_patterns, mx_matches
from postfix_mtasts.core.policy import Mode, Policy
from postfix_mtasts.core.text import quote

__all__ = ["check_coverage", "check_mx_host", "check_mx_records"]


def check_mx_records(
    domain: str, mx: MxFacts, implicit: AddressFacts | None
) -> tuple[list[Check], tuple[str, ...]]:
    """H13: the MX hosts mail goes to, best preference first."""

    def result(status: Status, message: str, fix: str = "") -> Check:
        return Check("H13", "mx-records", status, domain, message, fix)

    if mx.found is Found.ERROR:
        fix = "check that your DNS servers answer MX queries, then run the check again"
        return [result(Status.INCONCLUSIVE, f"MX lookup failed: {mx.reason}", fix)], ()
    if mx.found is Found.NONE:
        if implicit is not None and implicit.found is Found.YES:
            message = (
                f"{domain} has no MX record: senders use its A/AAAA"
                f" ({', '.join(implicit.addresses)}) as an implicit MX"
            )
            fix = f"publish an MX record; meanwhile the policy must list 'mx: {domain}'"
            return [result(Status.WARN, message, fix)], (domain,)
        message = f"{domain} has no MX and no A/AAAA record: it receives no mail"
        return [result(Status.FAIL, message, "publish MX records")], ()
    if any(not r.host for r in mx.records):
        message = f"{domain} has a null MX (RFC 7505): it accepts no mail"
        fix = "publish real MX records, or remove the MTA-STS records"
        return [result(Status.FAIL, message, fix)], ()
    records = sorted(mx.records, key=lambda r: (r.preference, r.host))
    listed = ", ".join(f"{r.host} ({r.preference})" for r in records)
    checks = [result(Status.PASS, f"{len(records)} MX: {listed}")]
    return checks, tuple(dict.fromkeys(r.host for r in records))


def check_coverage(hosts: Sequence[str], policy: Policy) -> list[Check]:
    """H14: every MX matches a pattern; every pattern matches an MX; ``*.``."""
    if policy.mode is Mode.NONE:
        return []
    checks = []
    for host in hosts:
        found = matching_patterns(host, policy.mx)
        if found:
            message = f"{host} matches mx: {', '.join(p.text for p in found)}"
            checks.append(Check("H14", "mx-coverage", Status.PASS, host, message))
        else:
            message = (
                f"{host} matches no mx pattern of the policy: senders refuse it"
                " in enforce mode"
            )
            fix = f"add 'mx: {host}' to the policy, then change the TXT id"
            checks.append(Check("H14", "mx-coverage", Status.FAIL, host, message, fix))
    for pattern in policy.mx:
        if not any(mx_matches(host, pattern) for host in hosts):
            message = f"mx: {pattern.text} matches none of the current MX hosts"
            fix = "remove the stale line (or add the MX back), then change the TXT id"
            checks.append(
                Check(
                    "H14", "mx-pattern-stale", Status.WARN, pattern.text, message, fix
                )
            )
        if pattern.wildcard:
            message = (
                f"mx: {pattern.text} lets any host with a valid certificate for a"
                f" name under {pattern.base} receive your mail (RFC 8461 §10.4)"
            )
            fix = "list the MX host names exactly, unless you control every such name"
            checks.append(
                Check(
                    "H14",
                    "mx-pattern-wildcard",
                    Status.WARN,
                    pattern.text,
                    message,
                    fix,
                )
            )
    return checks


def check_mx_host(facts: MxHostFacts, now: float) -> list[Check]:
    """H15, H16, H19 for one MX host, per address."""
    host = facts.host
    addresses = facts.addresses
    if addresses.found is not Found.YES:
        status = Status.FAIL if addresses.found is Found.NONE else Status.INCONCLUSIVE
        message = f"{host} has no usable A/AAAA record ({addresses.reason})"
        fix = f"publish an A/AAAA record for {host}, or remove it from the MX records"
        return [Check("H15", "mx-address", status, host, message, fix)]
    checks = []
    for probe, no_sni in facts.probes:
        subject = f"{host} [{probe.address}]"
        checks += _session(host, subject, probe, now)
        if no_sni is not None:
            checks.append(_no_sni(subject, no_sni))
    if facts.tlsa.found is Found.YES:
        signed = "DNSSEC-validated" if facts.tlsa.authenticated else "not validated"
        message = (
            f"_25._tcp.{host} has {facts.tlsa.count} TLSA record(s) ({signed}):"
            " DANE-aware senders use DANE and ignore MTA-STS for this host"
        )
        checks.append(Check("H19", "mx-tlsa", Status.INFO, host, message))
    return checks


def _session(host: str, subject: str, probe: ProbeFacts, now: float) -> list[Check]:
    def result(name: str, status: Status, message: str, fix: str = "") -> Check:
        return Check("H15", f"mx-{name}", status, subject, message, fix)

    if probe.stage is Stage.CONNECT:
        if probe.connect_problem is ConnectProblem.UNREACHABLE and ":" in probe.address:
            message = f"no IPv6 route from here to port 25 ({probe.error})"
            return [
                result(
                    "connect",
                    Status.INCONCLUSIVE,
                    message,
                    "check from a host with IPv6",
                )
            ]
        message = f"cannot connect to port 25: {probe.error}"
        fix = (
            "run the check where outbound port 25 is open; if it fails from"
            " everywhere, the MX is down or firewalled"
        )
        return [result("connect", Status.INCONCLUSIVE, message, fix)]
    stopped_early = probe.stage in (Stage.GREETING, Stage.EHLO)
    if probe.timed_out or (stopped_early and probe.starttls_offered is None):
        message = f"SMTP session stopped at {probe.stage.value}: {probe.error}"
        fix = "check that the server accepts SMTP sessions from this address"
        return [result("smtp", Status.INCONCLUSIVE, message, fix)]
    if probe.starttls_offered is False:
        message = "does not offer STARTTLS"
        fix = "enable STARTTLS with a certificate for this host (Postfix: smtpd_tls_security_level = may)"
        return [result("starttls", Status.FAIL, message, fix)]
    if probe.stage is Stage.STARTTLS:
        why = quote(probe.reply) if probe.reply else probe.error
        message = f"offers STARTTLS but refused it: {why}"
        return [result("starttls", Status.FAIL, message, "make STARTTLS work")]
    checks = [result("starttls", Status.PASS, "offers STARTTLS")]
    if probe.tls is None:
        if is_version_error(probe.error):
            message = f"no common TLS version: {probe.error}"
            checks.append(
                result("tls-version", Status.FAIL, message, "enable TLS 1.2 and 1.3")
            )
        else:
            message = f"TLS handshake failed: {probe.error}"
            checks.append(
                result("tls", Status.FAIL, message, "fix the server's TLS setup")
            )
        return checks
    return checks + tls_checks("H15", "mx", subject, host, probe.tls, now)


def _no_sni(subject: str, probe: ProbeFacts) -> Check:
    if probe.tls is not None:
        message = "TLS handshake without SNI works too"
        return Check("H16", "mx-no-sni", Status.PASS, subject, message)
    message = f"TLS handshake without SNI fails: {probe.error or probe.stage.value}"
    fix = "serve a default certificate to clients that send no SNI (RFC 8461 §7.1)"
    return Check("H16", "mx-no-sni", Status.WARN, subject, message, fix)
