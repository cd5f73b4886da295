"""Hand-made fakes of our own seams (style.md section 3): they record calls."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred

from postfix_mtasts.decision import Outcome
from postfix_mtasts.policy import Mode, MxPattern, Policy


def make_policy(
    mode: Mode = Mode.ENFORCE,
    mx: tuple[str, ...] = ("mx1.example.com",),
    max_age: int = 86400,
) -> Policy:
    patterns = tuple(
        MxPattern(text=p, wildcard=p.startswith("*."), base=p.removeprefix("*."))
        for p in mx
    )
    lines = (
        "version: STSv1",
        f"mode: {mode.value}",
        *(f"mx: {p}" for p in mx),
        f"max_age: {max_age}",
    )
    return Policy(mode=mode, max_age=max_age, mx=patterns, lines=lines)


class FakeResolver:
    """Each resolve() call is recorded with its own Deferred for the test to fire."""

    def __init__(self) -> None:
        self.calls: list[
            tuple[str, str | None, Callable[[str], bool], Deferred[Outcome]]
        ] = []

    def resolve(
        self, domain: str, known_id: str | None, may_fetch: Callable[[str], bool]
    ) -> Deferred[Outcome]:
        d: Deferred[Outcome] = Deferred()
        self.calls.append((domain, known_id, may_fetch, d))
        return d

    def answer_last(self, outcome: Outcome) -> None:
        self.calls[-1][3].callback(outcome)
