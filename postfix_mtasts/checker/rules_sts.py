# -*- test-case-name: tests.unit.test_checker_rules -*-
"""The DNS records of a policy domain: ``_mta-sts`` (spec H1-H3, H20),
``_smtp._tls`` (H17) and the domain name itself (H21).  Pure; the record
grammar is :func:`postfix_mtasts.core.record.parse_sts_records`, the daemon's own.
"""

from __future__ import annotations

from postfix_mtasts.checker.facts import Found, TxtFacts
from postfix_mtasts.checker.model import Check, Status
from postfix_mtasts.checker.tlsrpt import TlsRptInvalid, parse_tlsrpt_records
from postfix_mtasts.core.record import RecordInvalid, StsRecord, parse_sts_records

__all__ = ["check_domain_name", "check_sts_record", "check_tlsrpt_record"]

# parse_sts_records notes (rule -> status, fix) shown as H3
_RECORD_NOTES = {
    "A8": (Status.WARN, "write 'v=STSv1;' with no space before the ';'"),
    "A6": (Status.WARN, "make sure no MTA-STS record is among them, misspelt"),
    "A13": (Status.WARN, "keep one of each field"),
    "A9": (Status.INFO, ""),
    "A12": (Status.INFO, ""),
}
_RETRY = "check that your DNS servers answer for {name}, then run the check again"


def check_domain_name(input_domain: str, domain: str) -> list[Check]:
    """H21: an IDN is checked, and must be published, in A-label form."""
    if input_domain.rstrip(".").lower() == domain:
        return []
    message = f"{input_domain} is checked as its A-label form {domain}"
    return [Check("H21", "domain-idn", Status.INFO, domain, message)]


def check_sts_record(txt: TxtFacts, suggested_id: str) -> list[Check]:
    """H1, H2, H3 and H20 for ``_mta-sts.<domain>``."""
    name = txt.name
    publish = f'publish {name}. IN TXT "v=STSv1; id={suggested_id}"'
    missing = f"{name} has no TXT record ({txt.reason})"
    not_found = _not_found(txt, "H1", "sts-record", Status.FAIL, missing, publish)
    if not_found is not None:
        return not_found
    checks = _delegation(txt, "sts-record-delegation")
    record = parse_sts_records(txt.records)
    if isinstance(record, RecordInvalid) and record.rule == "A7":
        fix = "keep exactly one TXT record beginning 'v=STSv1;' at that name"
        checks.append(Check("H1", "sts-record", Status.FAIL, name, record.reason, fix))
        return checks + _notes(name, record)
    if isinstance(record, StsRecord):
        message = f"{name} has one v=STSv1 record (id {record.id})"
        checks.append(Check("H1", "sts-record", Status.PASS, name, message))
        checks.append(
            Check("H2", "sts-record-syntax", Status.PASS, name, "record is valid")
        )
        return checks + _notes(name, record)
    message = f"{name} has one TXT record meant for MTA-STS"
    checks.append(Check("H1", "sts-record", Status.PASS, name, message))
    why = f"record is invalid ({record.rule}): {record.reason}"
    fix = f'write it exactly as "v=STSv1; id={suggested_id}" (id: 1-32 letters/digits)'
    checks.append(Check("H2", "sts-record-syntax", Status.FAIL, name, why, fix))
    return checks + _notes(name, record)


def _not_found(
    txt: TxtFacts, rule: str, check: str, status: Status, message: str, fix: str
) -> list[Check] | None:
    """The check when the lookup found no record (``status``) or failed."""
    if txt.found is Found.ERROR:
        failed = f"DNS lookup of {txt.name} TXT failed: {txt.reason}"
        retry = _RETRY.format(name=txt.name)
        return [Check(rule, check, Status.INCONCLUSIVE, txt.name, failed, retry)]
    if txt.found is Found.NONE:
        return [Check(rule, check, status, txt.name, message, fix)]
    return None


def _delegation(txt: TxtFacts, check: str) -> list[Check]:
    if not txt.cname_chain:
        return []
    chain = " -> ".join(txt.cname_chain)
    message = f"{txt.name} is a CNAME to {chain} (delegated, RFC 8461 §8.2)"
    return [Check("H20", check, Status.INFO, txt.name, message)]


def _notes(name: str, record: StsRecord | RecordInvalid) -> list[Check]:
    checks = []
    for note in record.notes:
        status, fix = _RECORD_NOTES.get(note.rule, (Status.INFO, ""))
        message = f"{note.text} ({note.rule})"
        checks.append(Check("H3", "sts-record-style", status, name, message, fix))
    return checks


def check_tlsrpt_record(txt: TxtFacts, domain: str) -> list[Check]:
    """H17: one valid ``v=TLSRPTv1`` record with its ``rua`` targets.

    Missing is a WARN (TLSRPT is optional, but testing mode without reports
    teaches nothing); a record that is there but unusable is a FAIL: senders
    silently treat the domain as having none (RFC 8460 §3).
    """
    name = txt.name
    example = f'{name}. IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"'
    missing = f"no TLSRPT record at {name}: nobody will report TLS failures to you"
    not_found = _not_found(
        txt, "H17", "tlsrpt-record", Status.WARN, missing, f"publish {example}"
    )
    if not_found is not None:
        return not_found
    checks = _delegation(txt, "tlsrpt-record-delegation")
    record = parse_tlsrpt_records(txt.records)
    if isinstance(record, TlsRptInvalid):
        fix = f"publish exactly one record like {example}"
        return [
            *checks,
            Check("H17", "tlsrpt-record", Status.FAIL, name, record.reason, fix),
        ]
    message = f"{name} has one v=TLSRPTv1 record; reports go to {', '.join(record.rua)}"
    checks.append(Check("H17", "tlsrpt-record", Status.PASS, name, message))
    if record.ignored:
        message = f"unknown field(s) ignored: {', '.join(record.ignored)}"
        checks.append(Check("H17", "tlsrpt-record-style", Status.INFO, name, message))
    return checks
