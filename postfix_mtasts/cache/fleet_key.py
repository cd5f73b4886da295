# -*- test-case-name: tests.unit.test_seal -*-
"""Read the fleet key file named by ``[redis] fleet_key_file`` (issue 9).

One key per line (e.g. the output of ``openssl rand -hex 32``), at least
:data:`~postfix_mtasts.core.seal.MIN_KEY_BYTES` characters each; the first
seals what this host writes, each opens what it reads.  A second line is an
old or a new key during a rotation.  The file must not be open to other users:
whoever reads it can write policies for the whole fleet.
"""

from __future__ import annotations

import os
import stat

from postfix_mtasts.core.config_toml import ConfigError
from postfix_mtasts.core.seal import MIN_KEY_BYTES

__all__ = ["MAX_KEYS", "read_fleet_keys"]

MAX_KEYS = 2
_MAX_FILE_BYTES = 4096
_WHERE = "redis.fleet_key_file"


def read_fleet_keys(path: str) -> tuple[bytes, ...]:
    """The keys in ``path``; ConfigError naming what is wrong with it."""
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{_WHERE}: cannot read {path}: {e.strerror or e}") from e
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{_WHERE}: {path} is not a regular file")
    if info.st_mode & 0o007:
        mode = stat.S_IMODE(info.st_mode)
        raise ConfigError(
            f"{_WHERE}: {path} is open to other users (mode {mode:04o}); "
            f"run: chmod o= {path}"
        )
    if len(data) > _MAX_FILE_BYTES:
        raise ConfigError(f"{_WHERE}: {path} is longer than {_MAX_FILE_BYTES} bytes")
    keys = tuple(line.strip() for line in data.splitlines() if line.strip())
    if not 1 <= len(keys) <= MAX_KEYS:
        raise ConfigError(
            f"{_WHERE}: {path} holds {len(keys)} keys, expected 1 or {MAX_KEYS}"
            " (one per line)"
        )
    for number, key in enumerate(keys, 1):
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                f"{_WHERE}: key {number} in {path} has {len(key)} characters,"
                f" at least {MIN_KEY_BYTES} are needed (openssl rand -hex 32)"
            )
    return keys
