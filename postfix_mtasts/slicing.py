# -*- test-case-name: tests.unit.test_control_slices -*-
"""Admin work in slices, so that Postfix's lookups never wait behind it.

The control socket's verbs (``cache list``/``export`` of 100,000 entries, an
``import`` of as many) run on the reactor's thread, like the lookups.  Done
in one go they held lookups up for seconds (issue 11).  Here they are
iterators run by one :class:`~twisted.internet.task.Cooperator` per control
socket: each reactor turn runs their steps, round-robin, for at most
``slice_s`` (and ``max_steps``, when given), then hands the reactor back so
every ready lookup is read and answered before the next slice.  A lookup
thus waits at most about one slice.

:class:`SlicedWriter` writes a long answer made that way: the parts are made
in slices and written a chunk at a time, and the work pauses while the
transport's write buffer is full (a reader that does not read costs no CPU).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import Protocol, cast

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.task import CooperativeTask, Cooperator, TaskDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["SLICE_S", "TURN_GAP_S", "SlicedWriter", "keep_out_of_gc", "slicer"]

#: One write of a long answer (Twisted's buffer pauses us past 64 KiB).
REPLY_CHUNK_BYTES = 64 * 1024

#: How long admin work holds the reactor at a time.
SLICE_S = 0.002

#: The pause between two turns of the daemon's admin work: the reactor
#: waits in its poll meanwhile, so lookups (and the replies it has buffered)
#: go out at once rather than after the next turn; admin work takes at most
#: two thirds of the reactor's time.
TURN_GAP_S = 0.001


class _Transport(Protocol):
    """What the writer needs of a stream transport."""

    def registerProducer(  # noqa: N802 (Twisted's names)
        self, producer: IPushProducer, streaming: bool
    ) -> None: ...
    def unregisterProducer(self) -> None: ...  # noqa: N802
    def write(self, data: bytes) -> None: ...


def keep_out_of_gc() -> None:
    """Imported policies live long, like those loaded at start (which
    ``start_daemon`` freezes): collect the young garbage, then move what
    lives into the permanent generation, so that the collector's full
    passes, which stalled lookups for up to 1.4 s after an import of
    100,000 entries, do not walk them again and again."""
    gc.collect(1)
    gc.freeze()


def slicer(
    clock: IReactorTime,
    *,
    slice_s: float = SLICE_S,
    max_steps: int | None = None,
    timer: Callable[[], float] = time.perf_counter,
    turn_delay_s: float = 0.0,
) -> Cooperator:
    """A Cooperator whose turns last ``slice_s`` of ``timer`` (and at most
    ``max_steps`` steps), each started by ``clock.callLater(turn_delay_s,
    ...)``: the reactor polls its sockets between two turns.  (A test's
    Clock runs calls made for "now" in the same ``advance``: a positive
    delay lets it run one turn at a time.)"""

    def turn() -> Callable[[], bool]:
        deadline = timer() + slice_s
        steps = 0

        def over() -> bool:
            nonlocal steps
            steps += 1
            return timer() >= deadline or (max_steps is not None and steps >= max_steps)

        return over

    return Cooperator(
        terminationPredicateFactory=turn,
        scheduler=lambda work: clock.callLater(turn_delay_s, work),
    )


@implementer(IPushProducer)
class SlicedWriter:
    """Writes ``parts``, made a step at a time by ``cooperator``, in chunks
    of about ``chunk_bytes``; pauses while the transport's buffer is full;
    unregisters and calls ``done`` at the end.  ``steps`` counts the parts
    made, for a caller that watches for progress (none is made while the
    transport's buffer is full)."""

    log = Logger()

    def __init__(
        self,
        transport: object,
        parts: Iterable[bytes],
        done: Callable[[], None],
        cooperator: Cooperator,
        chunk_bytes: int = REPLY_CHUNK_BYTES,
    ) -> None:
        self._wire = cast(_Transport, transport)
        self._parts = parts
        self._done = done
        self._cooperator = cooperator
        self._chunk_bytes = chunk_bytes
        self._task: CooperativeTask[Iterator[None]] | None = None
        self._paused = self._over = False
        self.steps = 0

    def start(self) -> None:
        self._wire.registerProducer(self, True)
        task = self._task = self._cooperator.cooperate(self._steps())
        task.whenDone().addCallbacks(self._finished, self._failed)

    def _steps(self) -> Iterator[None]:
        batch: list[bytes] = []
        size = 0
        for part in self._parts:
            batch.append(part)
            size += len(part)
            if size >= self._chunk_bytes:
                self._write(batch)
                batch, size = [], 0
            self.steps += 1
            yield None
        if batch:
            self._write(batch)

    def _write(self, batch: list[bytes]) -> None:
        self._wire.write(b"".join(batch))

    def _finished(self, _: object) -> None:
        if not self._over:
            self._over = True
            self._wire.unregisterProducer()
            self._done()

    def _failed(self, failure: Failure) -> None:
        if isinstance(failure.value, TaskDone):
            return  # stopped: the transport is gone
        self.log.failure("writing a reply failed", failure)
        self._finished(None)

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's name)
        # The transport may say so again while paused: pause the work once.
        if not self._paused and self._task is not None and not self._over:
            self._paused = True
            self._task.pause()

    def resumeProducing(self) -> None:  # noqa: N802 (Twisted's name)
        if self._paused and self._task is not None:
            self._paused = False
            self._task.resume()

    def stopProducing(self) -> None:  # noqa: N802 (Twisted's name)
        """The transport is gone: make nothing more, call nothing."""
        self._over = True
        if self._task is not None:
            with suppress(TaskDone):
                self._task.stop()
