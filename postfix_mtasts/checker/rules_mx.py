# -*- test-case-name: tests.unit.test_checker_mx -*-
"""The MX side: MX records (spec H13), coverage by the policy's ``mx``
patterns (H14, with the daemon's own :func:`~postfix_mtasts.core.mx.mx_matches`),
each MX host's STARTTLS session (H15), a handshake without SNI (H16) and
TLSA records (H19).  Pure.

An MX address that refuses a connection to port 25, or lets it time out,
FAILs when another MX address of the domain, of the same IP version,
completed a TCP connect on port 25 in the same run: this network reaches
port 25, so that MX is down or firewalled.  With no such witness it is
INCONCLUSIVE: a refusal or a timeout cannot be told apart from port 25
being blocked on the checker's own network (common on home and cloud
networks).  No route to host and other connect errors stay INCONCLUSIVE.
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

__all__ = [
    "check_coverage",
    "check_mx_host",
    "check_mx_hosts",
    "check_mx_records",
    "port25_answered",
]

# (MX host, address) of an MX address that completed a TCP connect on port 25
Answered = tuple[str, str]


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


def port25_answered(hosts: Sequence[MxHostFacts]) -> tuple[Answered, ...]:
    """(host, address) of every MX address whose session got past the TCP
    connect on port 25 (whatever happened next)."""
    return tuple(
        (host.host, probe.address)
        for host in hosts
        for probe, _ in host.probes
        if probe.stage is not Stage.CONNECT
    )


def check_mx_hosts(hosts: Sequence[MxHostFacts], now: float) -> list[Check]:
    """H15, H16, H19 for every MX host of one domain, each address that
    cannot be reached judged against the others (see the module docstring)."""
    answered = port25_answered(hosts)
    checks = []
    for host in hosts:
        checks += check_mx_host(host, now, answered)
    return checks


def check_mx_host(
    facts: MxHostFacts, now: float, answered: Sequence[Answered] = ()
) -> list[Check]:
    """H15, H16, H19 for one MX host, per address; ``answered`` are the MX
    addresses of the same domain that completed a connect on port 25."""
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
        checks += _session(host, subject, probe, now, answered)
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


def _session(
    host: str,
    subject: str,
    probe: ProbeFacts,
    now: float,
    answered: Sequence[Answered],
) -> list[Check]:
    def result(name: str, status: Status, message: str, fix: str = "") -> Check:
        return Check("H15", f"mx-{name}", status, subject, message, fix)

    if probe.stage is Stage.CONNECT:
        return [_connect(host, subject, probe, answered)]
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


_DEAD = {
    ConnectProblem.REFUSED: "refused the connection to port 25",
    ConnectProblem.TIMEOUT: "did not answer on port 25",
}


def _version(address: str) -> int:
    """4 or 6 (addresses come from A/AAAA answers, in their text form)."""
    return 6 if ":" in address else 4


def _connect(
    host: str, subject: str, probe: ProbeFacts, answered: Sequence[Answered]
) -> Check:
    """H15 ``mx-connect`` for a session that never got a TCP connection."""

    def result(status: Status, message: str, fix: str) -> Check:
        return Check("H15", "mx-connect", status, subject, message, fix)

    version = _version(probe.address)
    if probe.connect_problem is ConnectProblem.UNREACHABLE and version == 6:
        message = f"no IPv6 route from here to port 25 ({probe.error})"
        return result(Status.INCONCLUSIVE, message, "check from a host with IPv6")
    witness = next(
        (
            (other, address)
            for other, address in answered
            if address != probe.address and _version(address) == version
        ),
        None,
    )
    what = _DEAD.get(probe.connect_problem) if probe.connect_problem else None
    if witness is not None and what is not None:
        other, address = witness
        message = (
            f"{subject} {what} ({probe.error}), while {other} [{address}]"
            " answered on port 25 in the same run: port 25 is open from here,"
            " so this MX is down or firewalled and senders cannot deliver to it"
        )
        fix = (
            f"make {host} accept SMTP on port 25 of {probe.address} from the"
            " Internet (server running and listening there, no firewall"
            " dropping or rejecting port 25), or remove it from the MX records"
        )
        return result(Status.FAIL, message, fix)
    message = f"cannot connect to port 25: {probe.error}"
    if what is not None:
        message += (
            f" (no other IPv{version} MX address answered on port 25 from here:"
            " this network may block outbound port 25)"
        )
    fix = (
        "run the check where outbound port 25 is open; if it fails from"
        " everywhere, the MX is down or firewalled"
    )
    return result(Status.INCONCLUSIVE, message, fix)


def _no_sni(subject: str, probe: ProbeFacts) -> Check:
    if probe.tls is not None:
        message = "TLS handshake without SNI works too"
        return Check("H16", "mx-no-sni", Status.PASS, subject, message)
    message = f"TLS handshake without SNI fails: {probe.error or probe.stage.value}"
    fix = "serve a default certificate to clients that send no SNI (RFC 8461 §7.1)"
    return Check("H16", "mx-no-sni", Status.WARN, subject, message, fix)
