# -*- test-case-name: tests.unit.test_control_slices,tests.unit.test_control_import -*-
"""One ``cache import`` under way on the control socket (issue 11).

Without a cooperator (the CLI on a store file) each entry line is applied as
:meth:`ImportSession.add` gets it.  With one (the daemon), lines wait in a
queue and are checked and applied in the cooperator's slices
(:mod:`postfix_mtasts.slicing`), so Postfix's lookups are answered between
two slices; the caller stops reading while :attr:`ImportSession.backlog`
bytes wait and hears from ``on_room`` when they are applied.  An entry older
than the cached one is kept out and counted (``kept``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Cooperator, TaskDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.cache.refused import SHOWN, log_refused
from postfix_mtasts.core.imported import KeptNewer

__all__ = ["IMPORT_BACKLOG_BYTES", "ImportSession", "Reply"]

Reply = Iterable[bytes]

#: An import reads no more lines while this many bytes of them wait.
IMPORT_BACKLOG_BYTES = 256 * 1024

#: Applies one entry line: why it is refused, the newer entry kept, or None.
Apply = Callable[[bytes], str | KeptNewer | None]

#: ``settle`` is called after this many entries are applied, and at the end.
SETTLE_EVERY = 2000


class ImportSession:
    """See the module docstring.  :meth:`end`: the empty line came; its
    Deferred gives the answer with the counts once every line is applied."""

    log = Logger(namespace="postfix_mtasts.control.AdminCommands")

    def __init__(
        self,
        apply: Apply,
        cooperator: Cooperator | None = None,
        settle: Callable[[], None] | None = None,
    ) -> None:
        """``settle``: called every :data:`SETTLE_EVERY` entries applied and
        at the end (the daemon keeps imported entries out of GC passes)."""
        self._apply_line = apply
        self._settle = settle
        self._unsettled = 0
        self.imported = self.kept = self.rejected = 0
        self._first_refused: list[tuple[str, str]] = []
        self._lines: deque[bytes] = deque()
        self.backlog = 0
        self._wake: Deferred[None] | None = None
        self._ended = False
        self.on_room: Callable[[], None] = lambda: None
        self._task = cooperator.cooperate(self._work()) if cooperator else None

    def add(self, line: bytes) -> None:
        if self._task is None:
            self._apply(line)
            return
        self._lines.append(line)
        self.backlog += len(line)
        self._wake_up()

    def end(self) -> Deferred[Reply]:
        """No more lines; the answer once the queued ones are applied."""
        self._ended = True
        if self._task is None:
            return succeed(self.finish())
        self._wake_up()
        return self._task.whenDone().addCallbacks(
            lambda _: self.finish(), self._stopped
        )

    def cancel(self) -> None:
        """The connection is gone: apply no more (what was applied stays)."""
        self._lines.clear()
        self._ended = True
        if self._task is not None:
            with suppress(TaskDone):
                self._task.stop()

    def _stopped(self, failure: Failure) -> Reply | Failure:
        if not isinstance(failure.value, TaskDone):
            return failure
        return _line({"ok": False, "error": "import cut short"})

    def _wake_up(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.callback(None)

    def _work(self) -> Iterator[Deferred[None] | None]:
        while True:
            while self._lines:
                line = self._lines.popleft()
                full = self.backlog >= IMPORT_BACKLOG_BYTES
                self.backlog -= len(line)
                self._apply(line)
                if full and self.backlog < IMPORT_BACKLOG_BYTES:
                    self.on_room()
                yield None
            if self._ended:
                self._settled()
                return
            self._wake = Deferred()
            yield self._wake

    def _settled(self) -> None:
        if self._settle is not None and self._unsettled:
            self._unsettled = 0
            self._settle()

    def _apply(self, line: bytes) -> None:
        self._unsettled += 1
        if self._unsettled >= SETTLE_EVERY:
            self._settled()
        result = self._apply_line(line)
        if result is None:
            self.imported += 1
        elif isinstance(result, KeptNewer):
            self.kept += 1
        else:
            self.rejected += 1
            if len(self._first_refused) < SHOWN:
                self._first_refused.append(
                    (line[:100].decode(errors="replace"), result)
                )

    def finish(self) -> Reply:
        # One line for the whole import, however many entries it refused.
        log_refused(self.log, "import", self._first_refused, count=self.rejected)
        self.log.info(
            "cache import done imported={imported} kept_newer={kept}"
            " rejected={rejected}",
            imported=self.imported,
            kept=self.kept,
            rejected=self.rejected,
        )
        return _line(
            {
                "ok": True,
                "imported": self.imported,
                "kept": self.kept,
                "rejected": self.rejected,
            }
        )


def _line(obj: dict[str, object]) -> Reply:
    return [json.dumps(obj).encode() + b"\n"]
