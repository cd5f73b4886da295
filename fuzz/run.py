"""Run one fuzz target under libFuzzer (atheris).

    python -m fuzz.run TARGET [libFuzzer options] [CORPUS_DIR ...]

The daemon's package (and ``idna``, which classifies non-ASCII keys) is
instrumented for coverage as it is imported, so the target must be imported
here first.  Options are libFuzzer's (``-runs=N``, ``-max_total_time=S``,
``-merge=1``, ``-seed=N``, ``-artifact_prefix=DIR/``...); the target's
dictionary in fuzz/dicts/ is added unless ``-dict=`` is given.  An escaping
exception prints its traceback, writes the input to ``crash-<sha1>`` under
the artifact prefix and exits non-zero.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]  # no stubs published

from fuzz import DICT_DIR, TARGETS, load

#: Longest input libFuzzer makes, unless ``-max_len=`` is given.  The wire
#: and TXT targets reach their length checks through small limits (the
#: header's limit byte), so short inputs run faster at the same coverage;
#: a key needs room past MAX_KEY_BYTES (1024), a body or entry the default.
MAX_LEN = {"nexthop": 1100, "policy": 4096, "entry": 4096}
DEFAULT_MAX_LEN = 1024

#: What is instrumented: the daemon, and what parses keys for it.
INSTRUMENTED = ["postfix_mtasts", "idna", "fuzz.targets", "fuzz.postfix_attrs"]


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz.run {{{'|'.join(TARGETS)}}} [libFuzzer args]")
    name, options = argv[1], argv[2:]
    with atheris.instrument_imports(include=INSTRUMENTED):
        one_input = load(name)
    dictionary = DICT_DIR / f"{name}.dict"
    if dictionary.exists() and not any(o.startswith("-dict=") for o in options):
        options.append(f"-dict={dictionary}")
    if not any(o.startswith("-max_len=") for o in options):
        options.append(f"-max_len={MAX_LEN.get(name, DEFAULT_MAX_LEN)}")
    # libFuzzer runs argv[0] again for -merge and -fork: make it a command.
    os.environ.update(FUZZ_TARGET=name, FUZZ_PYTHON=sys.executable)
    atheris.Setup([str(Path(__file__).with_name("child")), *options], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
