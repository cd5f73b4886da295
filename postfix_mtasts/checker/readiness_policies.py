# -*- test-case-name: tests.unit.test_readiness -*-
"""The policies senders reported applying, beside the one the domain
publishes now (``reports --verdict``, issue 14).  Pure.

A sender caches a policy for its ``max_age`` and fetches a new one only
when the ``_mta-sts`` TXT id changes (RFC 8461 §3.3, §5.1), so an owner
who edited the policy file but not the id, or who changed both a day ago,
sees senders report the old one.  The comparison says so, policy by
policy; it is information beside the verdict, not a finding: what an old
policy costs shows in the failures and MX hosts the rules already weigh.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import frozen

from postfix_mtasts.checker.readiness_evidence import SeenPolicy
from postfix_mtasts.core.policy import Policy, PolicyInvalid, parse_policy
from postfix_mtasts.core.value import Value

__all__ = ["PolicyComparison", "compare_policies", "describe_policy"]


@frozen(repr=False)
class PolicyComparison(Value):
    """A policy senders applied, ``described`` as they act on it;
    ``difference`` is empty when it has the mode, mx patterns and max_age
    of the one published now, else says what differs."""

    seen: SeenPolicy
    described: str
    difference: str

    @property
    def as_published(self) -> bool:
        return not self.difference


def compare_policies(
    seen: Iterable[SeenPolicy], published: Policy | None
) -> tuple[PolicyComparison, ...]:
    """Each of ``seen`` beside ``published`` (None: none is published)."""
    return tuple(_compare(s, published) for s in seen)


def describe_policy(policy: Policy) -> str:
    """``mode M, mx P1 P2, max_age N``: what a sender acts on."""
    patterns = " ".join(p.text for p in policy.mx)
    return f"mode {policy.mode.value}, mx {patterns}, max_age {policy.max_age}"


def _compare(seen: SeenPolicy, published: Policy | None) -> PolicyComparison:
    if seen.policy_type != "sts":
        return PolicyComparison(seen, seen.policy_type, "not an MTA-STS policy")
    if not seen.policy_strings:
        return PolicyComparison(
            seen, "sts", "the senders did not say which policy (no policy-string)"
        )
    body = "".join(f"{line}\n" for line in seen.policy_strings)
    parsed = parse_policy(body.encode("utf-8", "replace"), max_age_limit=None)
    if isinstance(parsed, PolicyInvalid):
        why = f"not a valid policy ({parsed.rule}: {parsed.reason})"
        return PolicyComparison(seen, "sts", why)
    described = f"sts {describe_policy(parsed)}"
    if published is None:
        return PolicyComparison(
            seen, described, "no valid MTA-STS policy is published now"
        )
    return PolicyComparison(seen, described, _difference(parsed, published))


def _difference(parsed: Policy, published: Policy) -> str:
    differences = []
    if parsed.mode is not published.mode:
        differences.append(f"mode {parsed.mode.value}, now {published.mode.value}")
    if _patterns(parsed) != _patterns(published):
        seen_mx = " ".join(p.text for p in parsed.mx)
        now_mx = " ".join(p.text for p in published.mx)
        differences.append(f"mx {seen_mx}, now {now_mx}")
    if parsed.max_age != published.max_age:
        differences.append(f"max_age {parsed.max_age}, now {published.max_age}")
    return "; ".join(differences)


def _patterns(policy: Policy) -> frozenset[str]:
    return frozenset(p.text.lower() for p in policy.mx)
