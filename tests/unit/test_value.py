"""The one repr of the package's attrs classes (issue 13: start-up)."""

from __future__ import annotations

import importlib
import pkgutil

import attrs
from attrs import field, frozen
from twisted.trial.unittest import SynchronousTestCase

import postfix_mtasts
from postfix_mtasts.core.value import Value


@frozen(repr=False)
class Inner(Value):
    name: str = "a"


@frozen(repr=False)
class Shown(Value):
    number: int = 1
    text: str = "x'y"
    inner: Inner = Inner()
    hidden: bytes = field(default=b"secret", repr=False)
    items: tuple[Inner, ...] = (Inner("b"),)


@frozen
class AttrsInner:
    name: str = "a"


@frozen
class AttrsShown:
    number: int = 1
    text: str = "x'y"
    inner: AttrsInner = AttrsInner()
    hidden: bytes = field(default=b"secret", repr=False)
    items: tuple[AttrsInner, ...] = (AttrsInner("b"),)


class ValueReprTests(SynchronousTestCase):
    def test_same_as_attrs(self) -> None:
        """A Value's repr is the one attrs would have compiled for it: the
        class name, then each shown field, nested values included."""
        ours = repr(Shown())
        theirs = repr(AttrsShown()).replace("Attrs", "")
        self.assertEqual(ours, theirs)
        self.assertEqual(
            ours,
            "Shown(number=1, text=\"x'y\", inner=Inner(name='a'), "
            "items=(Inner(name='b'),))",
        )

    def test_str_is_repr(self) -> None:
        """str() of a Value (a log line's field) is its repr, as with attrs."""
        self.assertEqual(str(Inner("c")), "Inner(name='c')")

    def test_still_slotted_and_frozen(self) -> None:
        """The base adds no instance dictionary: the classes keep their
        memory per instance, and frozen ones stay frozen."""
        value = Shown()
        self.assertFalse(hasattr(value, "__dict__"))
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError, setattr, value, "number", 2
        )
        self.assertEqual(Shown(), Shown())
        self.assertEqual(hash(Shown()), hash(Shown()))

    def test_every_package_class(self) -> None:
        """Every attrs class of postfix_mtasts uses Value's repr, none a
        compiled one of its own (0.3 ms each at import, issue 13)."""
        classes = []
        for module_info in pkgutil.walk_packages(
            postfix_mtasts.__path__, postfix_mtasts.__name__ + "."
        ):
            if module_info.name.endswith("__main__"):
                continue
            module = importlib.import_module(module_info.name)
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and attrs.has(value)
                    and value.__module__ == module.__name__
                ):
                    classes.append(value)
        self.assertGreater(len(classes), 50)
        own = [c.__qualname__ for c in classes if c.__repr__ is not Value.__repr__]
        self.assertEqual(own, [])
