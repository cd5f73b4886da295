"""``[redis] fleet_key_file`` reaches the Redis store, and a key file that
cannot be used stops the start with one clear error (issue 9)."""

from __future__ import annotations

import os
import shutil
import tempfile

from attrs import evolve
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.redis import RedisStore
from postfix_mtasts.core.config import Config, RedisConfig, StoreConfig
from postfix_mtasts.storage import open_sharing

KEY = b"f" * 64


class FleetKeyWiringTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="fleet-wiring-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "fleet.key")
        with open(self.path, "wb") as f:
            f.write(KEY + b"\n")

    def config(self) -> Config:
        redis = RedisConfig(url="redis://127.0.0.1:1/0", fleet_key_file=self.path)
        return evolve(Config(), store=StoreConfig(path=""), redis=redis)

    def test_keys_reach_the_store(self) -> None:
        """The keys of a 0600 key file seal what the Redis store writes."""
        os.chmod(self.path, 0o600)
        sharing = self.successResultOf(
            Deferred.fromCoroutine(open_sharing(self.config(), Clock()))
        )
        assert sharing is not None
        (store,) = sharing._stores
        assert isinstance(store, RedisStore)
        self.assertEqual(store.fleet_keys, (KEY,))

    def test_world_readable_key_stops_start(self) -> None:
        """A key file other users can read is a configuration error: one
        error line naming the key, and exit status 2, before any store opens."""
        os.chmod(self.path, 0o644)
        with capturedLogs() as events:
            failure = self.failureResultOf(
                Deferred.fromCoroutine(open_sharing(self.config(), Clock())),
                SystemExit,
            )
        self.assertEqual(failure.value.code, 2)
        (error,) = events
        self.assertEqual(error["log_level"], LogLevel.error)
        self.assertIn("redis.fleet_key_file", error["error"])
        self.assertIn("chmod o=", error["error"])
