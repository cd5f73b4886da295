# -*- test-case-name: tests.unit.test_checker_rules -*-
"""Facts in, checks and a verdict out (spec H): :func:`evaluate`.  Pure.

The verdict follows the guide: publish in testing mode, read the TLSRPT
reports for about two weeks, then enforce.

- ``broken``: some check FAILs.
- ``ready-for-enforce``: nothing FAILs or is INCONCLUSIVE, and the policy is
  in enforce mode, or in testing mode with a valid TLSRPT record (so that the
  two weeks of testing produce reports).
- ``ready-for-testing``: nothing FAILs, but something could not be checked
  from here, or the policy is in testing mode without TLSRPT, or in mode none.
- ``could-not-check``: nothing FAILs and no DNS lookup that decides MTA-STS
  (the ``_mta-sts`` TXT, the MX, the policy host's A/AAAA) was answered:
  each failed with a resolver error or timeout (NXDOMAIN and NODATA are
  answers).  Nothing was seen, so nothing may pass.  A FAIL is real data
  and wins (``broken``); when some of those lookups answered, the others
  are INCONCLUSIVE checks like any other (``ready-for-testing`` at best).
"""

from __future__ import annotations

from collections.abc import Sequence

from postfix_mtasts.checker.facts import Facts, Found
from postfix_mtasts.checker.model import Check, Report, Status, Verdict
from postfix_mtasts.checker.rules_mx import (
    check_coverage,
    check_mx_hosts,
    check_mx_records,
)
from postfix_mtasts.checker.rules_policy import (
    check_fetch,
    check_policy_body,
    check_policy_host,
)
from postfix_mtasts.checker.rules_sts import (
    check_domain_name,
    check_sts_record,
    check_tlsrpt_record,
)
from postfix_mtasts.checker.suggest import Suggestion, new_policy_id, suggest
from postfix_mtasts.checker.tlsrpt import TlsRptRecord, parse_tlsrpt_records
from postfix_mtasts.core.policy import Mode, Policy

__all__ = [
    "decide",
    "evaluate",
    "mx_hosts",
    "published_policy",
    "suggestion",
    "unanswered_lookups",
]


def evaluate(facts: Facts, now: float) -> Report:
    """Judge everything observed about ``facts.domain`` at time ``now``."""
    checks = check_domain_name(facts.input_domain, facts.domain)
    checks += check_sts_record(facts.sts_txt, new_policy_id(now))
    host_checks, fetch = check_policy_host(
        facts.policy_host, f"mta-sts.{facts.domain}", now
    )
    checks += host_checks
    policy: Policy | None = None
    if fetch is not None:
        checks += check_fetch(fetch)
        if fetch.problem is None and fetch.body is not None:
            body_checks, policy = check_policy_body(fetch.url, fetch.body)
            checks += body_checks
    mx_checks, hosts = check_mx_records(facts.domain, facts.mx, facts.implicit_mx)
    checks += mx_checks
    if policy is not None:
        checks += check_coverage(hosts, policy)
    checks += check_mx_hosts(facts.mx_hosts, now)
    checks += check_tlsrpt_record(facts.tlsrpt_txt, facts.domain)
    mode = policy.mode if policy is not None else None
    verdict, reason = decide(checks, mode, unanswered_lookups(facts))
    return Report(
        facts.domain,
        now,
        tuple(checks),
        verdict,
        reason,
        None if mode is None else mode.value,
    )


def unanswered_lookups(facts: Facts) -> tuple[str, ...]:
    """``name TYPE: why`` for each DNS lookup that decides MTA-STS (the
    ``_mta-sts`` TXT, the MX, the policy host's A/AAAA) when none of them was
    answered; ``()`` when at least one was (NXDOMAIN and NODATA are answers)."""
    addresses = facts.policy_host.addresses
    lookups = (
        (f"{facts.sts_txt.name} TXT", facts.sts_txt.found, facts.sts_txt.reason),
        (f"{facts.domain} MX", facts.mx.found, facts.mx.reason),
        (f"{addresses.name} A/AAAA", addresses.found, addresses.reason),
    )
    if any(found is not Found.ERROR for _, found, _ in lookups):
        return ()
    return tuple(f"{name}: {why}" for name, _, why in lookups)


def published_policy(facts: Facts) -> Policy | None:
    """The policy the policy host serves, as :func:`evaluate` read it
    (None when none was fetched or it is invalid)."""
    fetch = facts.policy_host.fetch
    if fetch is None or fetch.problem is not None or fetch.body is None:
        return None
    return check_policy_body(fetch.url, fetch.body)[1]


def mx_hosts(facts: Facts) -> tuple[str, ...]:
    """The MX host names mail goes to (the implicit MX when there is none)."""
    return check_mx_records(facts.domain, facts.mx, facts.implicit_mx)[1]


def suggestion(facts: Facts, now: float) -> Suggestion | None:
    """``--suggest``: what to publish for the current MX hosts (spec H.2),
    keeping a valid TLSRPT record as it is."""
    tlsrpt = None
    if facts.tlsrpt_txt.found is Found.YES:
        records = facts.tlsrpt_txt.records
        if isinstance(parse_tlsrpt_records(records), TlsRptRecord):
            raw = next(
                b"".join(r) for r in records if b"".join(r).startswith(b"v=TLSRPTv1")
            )
            tlsrpt = raw.decode("ascii")
    return suggest(facts.domain, mx_hosts(facts), now, tlsrpt)


def _names(checks: Sequence[Check]) -> str:
    return ", ".join(dict.fromkeys(f"{c.rule} {c.check}" for c in checks))


def decide(
    checks: Sequence[Check], mode: Mode | None, unanswered: Sequence[str] = ()
) -> tuple[Verdict, str]:
    """The verdict and its reason (see the module docstring); ``unanswered``
    is :func:`unanswered_lookups`."""
    failed = [c for c in checks if c.status is Status.FAIL]
    if failed:
        return (
            Verdict.BROKEN,
            f"{len(failed)} check(s) FAIL ({_names(failed)}): fix them first",
        )
    if unanswered:
        why = (
            "no DNS lookup that decides MTA-STS was answered"
            f" ({'; '.join(unanswered)}): nothing was seen, so nothing can pass."
            " Check that the nameservers asked (/etc/resolv.conf or"
            " --nameserver) answer, and that the domain's DNS servers (and its"
            " DNSSEC signatures, if signed) work, then run the check again"
        )
        return Verdict.COULD_NOT_CHECK, why
    unknown = [c for c in checks if c.status is Status.INCONCLUSIVE]
    if unknown:
        why = (
            f"nothing fails, but {len(unknown)} check(s) could not be done from"
            f" here ({_names(unknown)}): stay in testing mode until they pass"
        )
        return Verdict.READY_FOR_TESTING, why
    if mode is None:
        return Verdict.READY_FOR_TESTING, "no policy could be read"
    warned = [c for c in checks if c.status is Status.WARN]
    if mode is Mode.ENFORCE:
        if warned:
            why = (
                f"enforce mode, and nothing fails; {len(warned)} check(s) WARN"
                f" ({_names(warned)}): worth fixing"
            )
            return Verdict.READY_FOR_ENFORCE, why
        return Verdict.READY_FOR_ENFORCE, "enforce mode, and every check passes"
    if mode is Mode.NONE:
        why = "mode none: MTA-STS is switched off; publish mode testing to start again"
        return Verdict.READY_FOR_TESTING, why
    reports = any(
        c.check == "tlsrpt-record" and c.status is Status.PASS for c in checks
    )
    if not reports:
        why = (
            "testing mode without a TLSRPT record produces no reports: publish"
            " _smtp._tls, test for about two weeks, then enforce"
        )
        return Verdict.READY_FOR_TESTING, why
    passes = (
        f"nothing fails ({len(warned)} check(s) WARN: {_names(warned)})"
        if warned
        else "every check passes"
    )
    why = (
        f"{passes}: after about two weeks of clean TLSRPT reports in"
        " testing mode, switch to 'mode: enforce', raise max_age to 1209600 or"
        " more, and change the id"
    )
    return Verdict.READY_FOR_ENFORCE, why
