"""Session fixtures for the integration tests: one hermetic world per run.

Every test collected under tests/integration/ gets the ``integration`` mark.
The world is built once per session (a few seconds) and shared: tests that
change it either restore what they changed, use their own domain names, or
ask for ``fresh_world`` (which calls ``world.reset()`` first).  Without root
or the tools the fixture FAILS: CI must prove these tests ran.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from .world import World, WorldError

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _tear_down_on_sigterm(built: World) -> None:
    """On SIGTERM (a CI timeout), remove the world, then die of SIGTERM.

    Installed now and again once the Twisted reactor runs: pytest-twisted
    runs every test inside the reactor, whose start-up installs its own
    SIGTERM handler (reactor.stop), which would leave the world behind.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        built.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    def install() -> None:
        if _in_main_thread() and not built.closed:
            signal.signal(signal.SIGTERM, handler)

    install()
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is not None and not getattr(reactor, "running", True):
        reactor.callWhenRunning(install)


@pytest.fixture(scope="session")
def world() -> Iterator[World]:
    """The running test world (see world.py for the API)."""
    try:
        built = World.create()
    except WorldError as e:
        problem = str(e)
    else:
        problem = ""
    if problem:
        pytest.fail(
            f"cannot build the integration test world: {problem}", pytrace=False
        )
    atexit.register(built.close)
    previous = signal.getsignal(signal.SIGTERM)
    _tear_down_on_sigterm(built)
    try:
        yield built
    finally:
        built.close()
        atexit.unregister(built.close)
        if _in_main_thread() and previous is not None:
            signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def fresh_world(world: World) -> World:
    """The session world, reset to its defaults before the test."""
    world.reset()
    return world
