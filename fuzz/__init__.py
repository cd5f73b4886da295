"""Coverage-guided fuzz targets for every parser of outside input (issue 9).

Each module in :mod:`fuzz.targets` exposes ``one_input(data: bytes) -> None``:
it drives one real parser of the daemon with ``data`` and raises
:class:`fuzz.contract.ContractError` (or lets the parser's own stray
exception escape) when the parser breaks its documented contract.  The
targets do not import atheris: the corpus replays in-process in the unit
tests, and :mod:`fuzz.run` hands a target to libFuzzer.

Importing this package does not import ``postfix_mtasts``, so that
:mod:`fuzz.run` can instrument it as it is first imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

__all__ = ["CORPUS_DIR", "DICT_DIR", "TARGETS", "load"]

#: Target names, in the order ``scripts/fuzz`` runs them.
TARGETS = (
    "socketmap",
    "tcptable",
    "nexthop",
    "record",
    "tlsrpt",
    "policy",
    "entry",
    "dnsreply",
)

CORPUS_DIR = Path(__file__).parent / "corpus"
DICT_DIR = Path(__file__).parent / "dicts"


def load(name: str) -> Callable[[bytes], None]:
    """The ``one_input`` function of target ``name``; KeyError if unknown."""
    if name not in TARGETS:
        raise KeyError(f"unknown fuzz target {name!r}; known: {', '.join(TARGETS)}")
    module = importlib.import_module(f"fuzz.targets.{name}")
    one_input: Callable[[bytes], None] = module.one_input
    return one_input
