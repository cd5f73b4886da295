"""What every target shares: how a broken contract is reported, and how an
input's leading bytes choose a target's parameters.

Input layouts are plain so that a seed can be written by hand (see
README.md): a target that needs parameters reads them from the first bytes
and treats a missing byte as 0, so every byte string is a valid input.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "ContractError",
    "chunked",
    "header",
    "require",
    "single_line",
    "txt_rrset",
]


class ContractError(AssertionError):
    """A parser answered something its documentation rules out."""


def require(condition: bool, what: str, *args: object) -> None:
    """Raise ContractError(``what % args``) unless ``condition`` holds.

    Not ``assert``: the checks must survive ``python -O``.  The message is
    formatted only on failure: a repr per check would halve exec/s.
    """
    if not condition:
        raise ContractError(what % args if args else what)


def single_line(text: str) -> bool:
    """One log event stays on one journal line (style section 4)."""
    return "\n" not in text and "\r" not in text


def header(data: bytes, size: int) -> tuple[bytes, bytes]:
    """Split ``data`` into its first ``size`` bytes, zero-padded, and the rest."""
    head = data[:size]
    return head + bytes(size - len(head)), data[size:]


def chunked(data: bytes) -> tuple[int, list[bytes]]:
    """Read ``<selector> <n> <n chunk sizes> <stream>`` from ``data``.

    Returns the selector byte and the stream cut into chunks: ``n`` is taken
    modulo 8, each size is a byte (0 gives an empty chunk), and what the sizes
    leave is the last chunk.
    """
    (selector, count), rest = header(data, 2)
    sizes, stream = header(rest, count % 8)
    return selector, list(_cut(stream, sizes))


def _cut(stream: bytes, sizes: bytes) -> Iterator[bytes]:
    pos = 0
    for size in sizes:
        yield stream[pos : pos + size]
        pos += size
    yield stream[pos:]


def txt_rrset(data: bytes) -> list[list[bytes]]:
    """Read ``<record separator> <string separator> <payload>`` as a TXT
    RRset: the payload split into records, each split into its strings.

    The two separator bytes are chosen by the input, so any byte can still
    appear inside a string; an empty payload is an empty RRset.
    """
    (records, strings), payload = header(data, 2)
    if not payload:
        return []
    return [
        record.split(bytes([strings])) if strings != records else [record]
        for record in payload.split(bytes([records]))
    ]
