"""The fleet key: its MAC on Redis values (core.seal) and the key file
(cache.fleet_key), issue 9."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.fleet_key import read_fleet_keys
from postfix_mtasts.core.config import ConfigError
from postfix_mtasts.core.seal import MAC_PREFIX, SEALED_OVERHEAD, seal, unseal

KEY = b"a" * 32
OTHER = b"b" * 32
NAME = "mtasts:policy:example.com"


class SealTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """A sealed value opens with its key to the exact payload."""
        value = seal(KEY, NAME, b'{"v":1}')
        self.assertTrue(value.startswith(MAC_PREFIX))
        self.assertEqual(len(value), SEALED_OVERHEAD + len(b'{"v":1}'))
        self.assertEqual(unseal([KEY], NAME, value), b'{"v":1}')

    def test_refusals(self) -> None:
        """Wrong key, other Redis key, changed payload, a bare or truncated
        MAC: each a reason, never the payload."""
        value = seal(KEY, NAME, b"payload")
        self.assertEqual(unseal([OTHER], NAME, value), "fleet key MAC does not match")
        self.assertEqual(
            unseal([KEY], NAME + "x", value), "fleet key MAC does not match"
        )
        self.assertEqual(
            unseal([KEY], NAME, value[:-1] + b"X"), "fleet key MAC does not match"
        )
        self.assertEqual(unseal([KEY], NAME, b"payload"), "no fleet key MAC")
        self.assertEqual(unseal([KEY], NAME, b"mac1:abc"), "malformed fleet key MAC")
        self.assertEqual(unseal([KEY], NAME, b"mac1:"), "malformed fleet key MAC")

    def test_key_boundary_is_unambiguous(self) -> None:
        """The MAC covers the key's length: moving bytes between the Redis
        key and the payload breaks it."""
        value = seal(KEY, "ab", b"c")
        moved = MAC_PREFIX + value[len(MAC_PREFIX) : SEALED_OVERHEAD] + b"bc"
        self.assertIsInstance(unseal([KEY], "a", moved), str)

    def test_any_key_opens(self) -> None:
        """During a rotation either key opens a value (the first seals)."""
        self.assertEqual(unseal([OTHER, KEY], NAME, seal(KEY, NAME, b"p")), b"p")

    def test_without_keys(self) -> None:
        """Without keys a plain value is its payload, a sealed one refused."""
        self.assertEqual(unseal([], NAME, b"plain"), b"plain")
        self.assertEqual(
            unseal([], NAME, seal(KEY, NAME, b"p")),
            "sealed with a fleet key, none configured",
        )


class KeyFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="fleet-key-")
        self.addCleanup(shutil.rmtree, self.dir)

    def write(self, data: bytes, mode: int = 0o600) -> str:
        path = os.path.join(self.dir, "fleet.key")
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def refused(self, path: str, because: str) -> None:
        error = self.assertRaises(ConfigError, read_fleet_keys, path)
        self.assertIn("redis.fleet_key_file", str(error))
        self.assertIn(because, str(error))

    def test_keys(self) -> None:
        """One key per line; blank lines and surrounding space ignored;
        group-readable is fine (the daemon's group)."""
        path = self.write(b"\n " + KEY + b" \n\n" + OTHER + b"\n", 0o640)
        self.assertEqual(read_fleet_keys(path), (KEY, OTHER))

    def test_open_to_others(self) -> None:
        """A key file other users can read (or write) is a configuration
        error: whoever reads it can write policies for the fleet."""
        self.refused(self.write(KEY, 0o644), "open to other users (mode 0644)")
        self.refused(self.write(KEY, 0o602), "chmod o=")

    def test_bad_contents(self) -> None:
        """No key, three keys, or a short key are configuration errors."""
        self.refused(self.write(b"\n \n"), "holds 0 keys")
        self.refused(self.write(b"\n".join([KEY, OTHER, KEY])), "holds 3 keys")
        self.refused(self.write(b"short"), "at least 32")
        self.refused(self.write(KEY * 200), "longer than")

    def test_unreadable(self) -> None:
        """A missing file or a directory is a configuration error."""
        self.refused(os.path.join(self.dir, "missing"), "cannot read")
        os.mkdir(os.path.join(self.dir, "sub"), 0o700)
        self.refused(os.path.join(self.dir, "sub"), "")
