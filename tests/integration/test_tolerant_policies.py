"""Policies real domains serve, read by the real daemon in the world and
asked through Postfix (`postmap -q` and real delivery): a file that needs
tolerance still protects the domain's mail, a plainly `mode: none` file
still withdraws it (RFC 8461 §8.3), and the log line says what was
tolerated (issue 12; spec C2, C3, C12, C13, C15 as decided).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .daemonctl import ask, cache_cli, socketmap, start_daemon
from .world import MX_GOOD, MX_WRONG_NAME, Proc, World

PORT = 8425
NAME = "tolerant"
TABLE = socketmap(PORT, "postfix")

# Every line indented, a blank line, a U-label mx that is not ours next to
# ours, an IP mx, a comment after max_age, and an editor's stray sentence.
TOLERATED_ENFORCE = (
    "  version: STSv1\r\n"
    "  mode: enforce\r\n"
    "\r\n"
    "  mx: {mx}\r\n"
    "  mx: münchen.example\r\n"
    "  mx: 192.0.2.25\r\n"
    "  max_age: 86400 # one day\r\n"
    "Switch to enforce after the TLS reports are clean.\r\n"
)
# The owner's removal path: a none policy with junk a strict reader refuses.
TOLERATED_NONE = (
    "version: STSv1\n"
    "mode: none\n"
    "max_age: 0 days\n"
    "mx: https://mx1.enforce.test/\n"
    "# withdrawn\n"
)


@pytest.fixture(scope="module")
def daemon(world: World) -> Iterator[Proc]:
    proc = start_daemon(world, NAME, port=PORT)
    yield proc
    proc.stop()


class TestTolerantReader:
    def test_tolerated_enforce_is_enforced(self, world: World, daemon: Proc) -> None:
        """An enforce policy a strict reader rejects (so a strict sender
        delivers in the clear or to any certificate) is enforced: Postfix
        hears `secure` with the valid mx only, the log line names what was
        tolerated, and `cache show` keeps it."""
        world.publish(
            "tol-enforce.test",
            mx={"mx1.enforce.test": MX_GOOD},
            policy=TOLERATED_ENFORCE.format(mx="mx1.enforce.test"),
        )
        assert ask(world, "tol-enforce.test", TABLE) == (
            0,
            "secure match=mx1.enforce.test:xn--mnchen-3ya.example servername=hostname",
        )
        line = next(
            x for x in daemon.output().splitlines() if "domain=tol-enforce.test" in x
        )
        for words in (
            "mode=enforce max_age=86400 tolerated=[",
            "indented (C2) line(s) 1, 2, 4, 5, 6, 7",
            "blank-line (C3) line(s) 3",
            "u-label-mx (C12) line(s) 5",
            "mx-dropped (C13) line(s) 6",
            "value-comment (C2) line(s) 7",
            "stray-line (C2) line(s) 8",
        ):
            assert words in line, line
        rc, out = cache_cli(world, NAME, "show", "tol-enforce.test")
        assert rc == 0, out
        assert '"stray-line (C2) line(s) 8:' in out

    def test_tolerated_enforce_refuses_the_wrong_certificate(
        self, world: World, daemon: Proc
    ) -> None:
        """Real delivery: the tolerated enforce policy of a domain whose MX
        shows a certificate for another name defers the mail (4.7.5) rather
        than deliver it to that host; the same domain's good MX is sent to
        with a verified certificate."""
        world.publish(
            "tol-mismatch.test",
            mx={"mx1.mismatch.test": MX_WRONG_NAME},
            policy=TOLERATED_ENFORCE.format(mx="mx1.mismatch.test"),
        )
        world.publish(
            "tol-good.test",
            mx={"mx1.enforce.test": MX_GOOD},
            policy=TOLERATED_ENFORCE.format(mx="mx1.enforce.test"),
        )
        for domain in ("tol-mismatch.test", "tol-good.test"):
            assert ask(world, domain, TABLE)[1].startswith("secure match=")
        pf = world.postfix(TABLE, name="tolerant")
        refused, _ = pf.deliver("tol-mismatch.test")
        assert (refused.status, refused.dsn) == ("deferred", "4.7.5"), refused.line
        sent, log = pf.deliver("tol-good.test")
        assert sent.status == "sent", sent.line
        assert "Verified TLS connection established to mx1.enforce.test" in log

    def test_plain_none_withdraws_a_cached_enforce(
        self, world: World, daemon: Proc
    ) -> None:
        """RFC 8461 §8.3: the owner replaces an enforce policy by a `mode:
        none` file (new id) that a strict reader rejects; the daemon reads it
        as none, so the cached enforce policy no longer applies."""
        world.publish("tol-removal.test", mx={"mx1.enforce.test": MX_GOOD})
        assert ask(world, "tol-removal.test", TABLE)[1].startswith("secure match=")
        world.publish(
            "tol-removal.test",
            mx={"mx1.enforce.test": MX_GOOD},
            policy=TOLERATED_NONE,
            policy_id="2",
        )
        rc, out = cache_cli(world, NAME, "refresh", "tol-removal.test")
        assert rc == 0, out
        assert '"mode": "none"' in out
        assert "none-max-age (C8)" in out
        assert ask(world, "tol-removal.test", TABLE) == (1, "")

    def test_still_rejected_keeps_the_cached_policy(
        self, world: World, daemon: Proc
    ) -> None:
        """What changes what is enforced stays strict: `mode: enforced` is
        invalid, so the cached enforce policy stays in force (C6, C17)."""
        world.publish("tol-typo.test", mx={"mx1.enforce.test": MX_GOOD})
        before = ask(world, "tol-typo.test", TABLE)
        assert before[1].startswith("secure match=")
        world.publish(
            "tol-typo.test",
            mx={"mx1.enforce.test": MX_GOOD},
            policy="version: STSv1\nmode: enforced\nmx: mx1.enforce.test\nmax_age: 86400\n",
            policy_id="2",
        )
        rc, out = cache_cli(world, NAME, "refresh", "tol-typo.test")
        assert rc == 0, out
        assert '"id": "1"' in out, out
        assert '"mode": "enforce"' in out, out
        assert ask(world, "tol-typo.test", TABLE) == before
