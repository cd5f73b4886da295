"""Run a Python module with a wall clock running ahead (or behind).

Usage: skewed_clock.py SECONDS -m MODULE [ARG ...]

``time.time`` and ``time.time_ns`` are shifted by SECONDS before MODULE is
imported, so Twisted's reactor (``twisted.python.runtime.seconds``) and
everything timed by it see the skewed clock: a fleet member whose clock is
wrong, without libfaketime.  Monotonic clocks and OpenSSL are left alone.
"""

from __future__ import annotations

import runpy
import sys
import time


def main(argv: list[str]) -> None:
    offset_s = float(argv[0])
    if argv[1] != "-m" or len(argv) < 3:
        raise SystemExit(__doc__)
    real_time, real_time_ns = time.time, time.time_ns  # noqa: TID251 - the real clock
    time.time = lambda: real_time() + offset_s  # noqa: TID251 - the skew itself
    time.time_ns = lambda: real_time_ns() + int(offset_s * 1e9)
    sys.argv = [argv[2], *argv[3:]]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
