"""SIGHUP reloads the running daemon in place (issue 11, point 2).

The daemon runs in $P-mta with its sqlite store; answers are read by
postmap and by a raw socketmap connection the test keeps open across the
reload; the world's HTTPS hosts count policy fetches.
"""

from __future__ import annotations

import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from .daemonctl import ask, socketmap, start_daemon, write_config
from .test_systemd import Datagrams
from .world import Proc, World

PORT = 8451  # 8451-8458
STRICT = "[maps.postfix]\nstrict_testing = true\n"


def netstring(text: str) -> bytes:
    data = text.encode()
    return b"%d:%s," % (len(data), data)


class Conn:
    """One socketmap connection from $P-mta, kept open by the test."""

    def __init__(self, world: World, port: int) -> None:
        self.sock = world.mta.connect("127.0.0.1", port, timeout=10)

    def ask(self, key: str, map_name: str = "postfix") -> str:
        self.sock.sendall(netstring(f"{map_name} {key}"))
        data = b""
        while not data.endswith(b","):
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed by the daemon"
            data += chunk
        return data.partition(b":")[2][:-1].decode()

    def close(self) -> None:
        self.sock.close()


def reloaded(proc: Proc, before: int, timeout: float = 10.0) -> list[str]:
    """SIGHUP ``proc`` and wait for its reload line (applied or refused);
    the log lines the reload wrote."""
    proc.signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while True:
        lines = proc.output().splitlines()[before:]
        if any("configuration reload" in line for line in lines):
            return lines
        assert time.monotonic() < deadline, f"no reload line: {lines}"
        time.sleep(0.05)  # noqa: TID251 - polling a real process


def line_count(proc: Proc) -> int:
    return len(proc.output().splitlines())


@pytest.fixture(scope="module")
def testing_daemon(world: World) -> Iterator[Proc]:
    """A daemon with the default map, and a testing-mode domain it cached."""
    world.publish("reload-testing.test", mode="testing")
    proc = start_daemon(world, "reload", port=PORT, maps="[maps.postfix]\n")
    yield proc
    proc.stop()


def test_reload_changes_answer_keeps_connection_and_cache(
    world: World, testing_daemon: Proc
) -> None:
    """Flipping strict_testing by SIGHUP turns a testing-mode domain's
    NOTFOUND into secure (D9, G.6) in the same process, on a socketmap
    connection open across the reload (G6), with no new policy fetch
    (the cache is kept, E2)."""
    host = "mta-sts.reload-testing.test"
    conn = Conn(world, PORT)
    try:
        assert conn.ask("reload-testing.test") == "NOTFOUND "
        assert ask(world, "reload-testing.test", socketmap(PORT))[0] == 1
        fetches = len(world.https.requests(host))
        assert fetches == 1
        pid = testing_daemon.pid
        write_config(world, "reload", port=PORT, maps=STRICT)
        lines = reloaded(testing_daemon, line_count(testing_daemon))
        expected = "OK secure match=mx1.reload-testing.test servername=hostname"
        assert conn.ask("reload-testing.test") == expected
        assert ask(world, "reload-testing.test", socketmap(PORT)) == (
            0,
            expected.removeprefix("OK "),
        )
        assert testing_daemon.alive()
        assert testing_daemon.pid == pid
        assert len(world.https.requests(host)) == fetches
        info = [x for x in lines if "configuration reloaded" in x]
        assert len(info) == 1, lines
        assert info[0].startswith("<6>")
        assert "maps.postfix.strict_testing" in info[0]
    finally:
        conn.close()


def test_broken_reload_keeps_old_config(world: World, testing_daemon: Proc) -> None:
    """An unknown key, or a new listener that cannot bind (the daemon's own
    port spelled another way): the running configuration stays whole, one
    error line names the key or endpoint, the process lives on."""
    write_config(world, "reload", port=PORT, maps=STRICT)
    reloaded(testing_daemon, line_count(testing_daemon))
    before = ask(world, "reload-testing.test", socketmap(PORT))
    assert before[0] == 0
    cases = {
        "maps.postfix.strict_testin: unknown key": {
            "maps": "[maps.postfix]\nstrict_testin = false\n"
        },
        f"listener[1].endpoint: cannot listen on tcp:{PORT}:127.0.0.1": {
            "maps": "[maps.postfix]\n",
            "listeners": f'[[listener]]\nendpoint = "tcp:{PORT}:127.0.0.1"\n',
        },
    }
    for needle, parts in cases.items():
        write_config(world, "reload", port=PORT, **parts)
        lines = reloaded(testing_daemon, line_count(testing_daemon))
        errors = [x for x in lines if x.startswith("<3>")]
        assert len(errors) == 1, lines
        assert needle in errors[0], errors
        assert "the running configuration is kept" in errors[0]
        assert testing_daemon.alive()
        assert ask(world, "reload-testing.test", socketmap(PORT)) == before


def test_listener_added_and_removed(world: World) -> None:
    """A reload that adds a listener and removes another: the new one
    answers, the removed one refuses new connections while the
    connection already open on it is still answered; the kept one keeps
    its open connection too (G6, F7)."""
    world.publish("reload-listen.test")
    second = '[[listener]]\nendpoint = "tcp:{port}:interface=127.0.0.1"\n'
    proc = start_daemon(
        world, "relisten", port=PORT + 1, listeners=second.format(port=PORT + 2)
    )
    kept, removed = Conn(world, PORT + 1), Conn(world, PORT + 2)
    try:
        expected = "OK secure match=mx1.reload-listen.test servername=hostname"
        assert removed.ask("reload-listen.test") == expected
        write_config(
            world, "relisten", port=PORT + 1, listeners=second.format(port=PORT + 3)
        )
        lines = reloaded(proc, line_count(proc))
        info = [x for x in lines if "configuration reloaded" in x]
        assert len(info) == 1, lines
        assert f"listener tcp:{PORT + 3}:interface=127.0.0.1 added" in info[0]
        assert f"listener tcp:{PORT + 2}:interface=127.0.0.1 removed" in info[0]
        assert ask(world, "reload-listen.test", socketmap(PORT + 3))[0] == 0
        with pytest.raises(ConnectionRefusedError):
            world.mta.connect("127.0.0.1", PORT + 2).close()
        assert removed.ask("reload-listen.test") == expected
        assert kept.ask("reload-listen.test") == expected
        assert removed.ask("reload-listen.test") == expected  # and again
    finally:
        kept.close()
        removed.close()
        proc.stop()


def test_ca_file_change_applies_to_next_fetch(world: World) -> None:
    """The CA file is read again at reload: a fetch refused under an
    untrusted CA (B3) succeeds for the next domain once the same file
    holds the test CA, without a restart."""
    world.publish("reload-ca1.test")
    world.publish("reload-ca2.test")
    work = world.work / "reca"
    work.mkdir(exist_ok=True)
    ca = work / "ca.pem"
    shutil.copy(world.pki.untrusted_ca_pem, ca)
    fetch = f'ca_file = "{ca}"'
    proc = start_daemon(world, "reca", port=PORT + 4, fetch=fetch)
    table = socketmap(PORT + 4)
    try:
        assert ask(world, "reload-ca1.test", table)[0] == 1
        assert world.https.failed_handshakes("mta-sts.reload-ca1.test")
        shutil.copy(world.pki.ca_pem, ca)
        lines = reloaded(proc, line_count(proc))
        assert not [x for x in lines if x.startswith("<3>")], lines
        assert ask(world, "reload-ca2.test", table) == (
            0,
            "secure match=mx1.reload-ca2.test servername=hostname",
        )
    finally:
        proc.stop()


def test_sighup_is_not_fatal_without_config_change(
    world: World, testing_daemon: Proc
) -> None:
    """A SIGHUP with the file unchanged says so and changes nothing."""
    write_config(world, "reload", port=PORT, maps="[maps.postfix]\n")
    reloaded(testing_daemon, line_count(testing_daemon))
    lines = reloaded(testing_daemon, line_count(testing_daemon))
    assert any("nothing changed" in x for x in lines), lines
    assert testing_daemon.alive()


def test_reload_tells_systemd(world: World) -> None:
    """Under systemd (NOTIFY_SOCKET), a reload is RELOADING=1 with the
    monotonic time, then READY=1 once the file is applied, in that order
    (systemd >= 253 waits between the two); a refused reload ends with
    READY=1 too, the old configuration still running."""
    path = world.work / "reload-notify.sock"
    path.unlink(missing_ok=True)
    sink = Datagrams(path)
    config = write_config(world, "renotify", port=PORT + 5)
    proc = world.spawn(
        "mta",
        [sys.executable, "-m", "postfix_mtasts", "serve", "--config", str(config)],
        env={"NOTIFY_SOCKET": str(path)},
        name="renotify",
    )
    try:
        sink.until(b"READY=1", timeout=30)
        for maps in (STRICT, "[maps.postfix]\nbogus = 1\n"):
            write_config(world, "renotify", port=PORT + 5, maps=maps)
            got = len(sink.got)
            proc.signal(signal.SIGHUP)
            sink.until(b"READY=1", timeout=10)
            messages = [data for _, data in sink.got[got:]]
            assert b"RELOADING=1" in messages[0].splitlines(), messages
            assert re.search(rb"MONOTONIC_USEC=\d+", messages[0]), messages
            assert b"READY=1" in messages[-1].splitlines(), messages
        assert proc.alive()
    finally:
        proc.stop()
        sink.close()
