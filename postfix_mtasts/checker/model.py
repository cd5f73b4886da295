# -*- test-case-name: tests.unit.test_checker_rules -*-
"""What the checker reports: one :class:`Check` per finding, and a verdict.

Pure.  The values are the ``--json`` schema (docs/checker.md): keep them stable.
"""

from __future__ import annotations

import enum

from attrs import frozen

from postfix_mtasts.core.value import Value

__all__ = ["Check", "Report", "Status", "Verdict"]


class Status(enum.Enum):
    """How a check came out (spec H.1)."""

    PASS = "PASS"  # noqa: S105 (a status word, not a password)
    WARN = "WARN"  # works, but the guide or the RFC advises otherwise
    FAIL = "FAIL"  # breaks MTA-STS for senders: fix it
    INFO = "INFO"  # worth knowing, nothing to fix
    INCONCLUSIVE = "INCONCLUSIVE"  # could not be checked from here


class Verdict(enum.Enum):
    """The overall verdict, following the guide: testing first, then enforce;
    or that the checker could not see the domain at all (no DNS answer)."""

    BROKEN = "broken"
    READY_FOR_TESTING = "ready-for-testing"
    READY_FOR_ENFORCE = "ready-for-enforce"
    COULD_NOT_CHECK = "could-not-check"


@frozen(repr=False)
class Check(Value):
    """One finding.

    ``rule`` is the spec.md H rule (``H15``); ``check`` a stable slug naming
    what was checked (``mx-cert-expiry``); ``subject`` the name, address or
    URL it was checked on; ``fix`` says what to do (empty for PASS and INFO).
    """

    rule: str
    check: str
    status: Status
    subject: str
    message: str
    fix: str = ""


@frozen(repr=False)
class Report(Value):
    """Every check of one domain, the verdict and why."""

    domain: str
    checked_at: float
    checks: tuple[Check, ...]
    verdict: Verdict
    verdict_reason: str
    mode: str | None  # the published policy's mode, if one was read

    @property
    def failed(self) -> bool:
        return any(c.status is Status.FAIL for c in self.checks)
