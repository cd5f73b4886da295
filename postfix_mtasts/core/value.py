# -*- test-case-name: tests.unit.test_value -*-
"""The base of the package's attrs classes: one ``__repr__`` for them all.

Pure.  attrs writes and compiles a ``__repr__`` for each class as the class
is made, about 0.3 ms each; the daemon makes some sixty such classes before
it can answer, so that was a sixth of what it adds to a bare Twisted
server's start (issue 13).  Every class is declared ``@frozen(repr=False)``
(or ``@define(repr=False)``) on :class:`Value`, which reads the fields when
a repr is asked for, in attrs' own format: ``Name(field=value, ...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from attrs import NOTHING, fields

if TYPE_CHECKING:
    from attrs import AttrsInstance

__all__ = ["Value"]


class Value:
    """Gives an attrs class attrs' repr, without a compiled one of its own."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{field.name}={getattr(self, field.name, NOTHING)!r}"
            for field in fields(cast("type[AttrsInstance]", type(self)))
            if field.repr
        )
        return f"{type(self).__qualname__}({shown})"
