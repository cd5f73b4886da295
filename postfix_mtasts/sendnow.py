# -*- test-case-name: tests.unit.test_sendnow -*-
"""Send an answer at once when the connection has nothing waiting to go out.

Twisted's TCP and unix transports keep every ``write`` in a buffer until the
reactor's next iteration: per answer, one ``epoll_ctl`` to watch the socket
for writing, one more trip through ``epoll_wait``, the ``send``, another
``epoll_ctl`` to stop watching.  A cached answer to Postfix is a hundred
bytes on a connection that owes nothing else, so the kernel takes it whole:
:func:`sender_for` gives a connection a ``send(data)`` that hands the bytes
to the socket right away (the transport's own ``writeSomeData``) when the
transport's buffer is empty, and otherwise does what ``transport.write``
does.  That halves a hot lookup's system calls and answers it before the
reactor goes back to other work (cold fetches, other connections).

What stays as before:

- order: bytes are sent at once only when nothing is queued before them;
  what the kernel does not take (a full socket buffer) is queued with
  ``transport.write``, so anything written later goes behind it;
- flow control: the transport's buffer, high-water mark and pausing of its
  producer see every byte that is not sent at once, as before;
- errors and closing: a failed send, a connection closing or closed, TLS,
  half-closed output: the bytes go to ``transport.write``, which drops or
  sends them and ends the connection as it always did;
- any transport that is not a plain TCP or unix stream connection (a test's
  ``StringTransport``, TLS): ``send`` is ``transport.write`` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from twisted.internet import tcp
from twisted.internet.interfaces import ITransport

__all__ = ["ImmediateSender", "sender_for"]


# What ImmediateSender reads of Twisted's FileDescriptor: where one of them
# is missing (another Twisted), connections simply write as before.
_STATE = (
    "dataBuffer",
    "_tempDataLen",
    "connected",
    "disconnecting",
    "_writeDisconnecting",
    "TLS",
    "writeSomeData",
)


def sender_for(transport: ITransport) -> Callable[[bytes], None]:
    """``send(data)`` for ``transport``: at once where it can (see above)."""
    if (
        isinstance(transport, tcp.Connection)
        and all(hasattr(transport, name) for name in _STATE)
        and not transport.TLS
    ):
        return ImmediateSender(transport).send
    return transport.write


class ImmediateSender:
    """Sends through a TCP or unix stream connection's socket at once while
    its write buffer is empty; queues with ``write`` otherwise."""

    __slots__ = ("_queue", "_transport")

    def __init__(self, transport: tcp.Connection) -> None:
        self._transport = transport
        self._queue: Callable[[bytes], None] = cast(ITransport, transport).write

    def send(self, data: bytes) -> None:
        t = self._transport
        if (
            t.dataBuffer
            or t._tempDataLen
            or not t.connected
            or t.disconnecting
            or t._writeDisconnecting
            or t.TLS
        ):
            self._queue(data)
            return
        sent = t.writeSomeData(data)
        if not isinstance(sent, int):
            # The socket failed: queued, the transport meets the error on its
            # next write attempt and closes the connection its usual way.
            self._queue(data)
        elif sent < len(data):  # the kernel's buffer is full: the rest waits
            self._queue(data[sent:])
