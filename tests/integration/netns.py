"""Network namespaces and the processes the test world runs inside them.

See /work/shared/notes/test-world.md section 2: ``ip netns exec NAME`` bind-mounts
``/etc/netns/NAME/resolv.conf`` and ``hosts`` for the process it starts, which
is why every long-running process goes through it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["Netns", "Proc", "WorldError", "run", "wait_unix"]

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class WorldError(RuntimeError):
    """The test world could not be built or did not behave."""


def _monotonic() -> float:
    return time.monotonic()


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; with check, raise WorldError on rc != 0."""
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        input=input,
        check=False,
    )
    if check and proc.returncode != 0:
        raise WorldError(
            f"{' '.join(argv)} -> rc {proc.returncode}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


class Netns:
    """One network namespace, by name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = False,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (with its resolv.conf and hosts)."""
        return run(
            self.exec_argv(argv), check=check, timeout=timeout, env=env, input=input
        )

    def pids(self) -> list[int]:
        out = run(["ip", "netns", "pids", self.name], check=False).stdout
        return [int(p) for p in out.split()]

    def open_socket(
        self,
        family: socket.AddressFamily = socket.AF_INET,
        type: socket.SocketKind = socket.SOCK_STREAM,
    ) -> socket.socket:
        """A socket of this namespace, usable from the test process.

        setns() runs in a short-lived thread, so only that thread switches
        namespace; the socket keeps it.  Names resolve through the caller's
        resolv.conf, so connect to addresses, not names.
        """
        result: list[socket.socket | BaseException] = []

        def make() -> None:
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if _libc.setns(fd, _CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err))
                finally:
                    os.close(fd)
                result.append(socket.socket(family, type))
            except BaseException as e:
                result.append(e)

        thread = threading.Thread(target=make, name=f"setns-{self.name}")
        thread.start()
        thread.join()
        item = result[0]
        if isinstance(item, BaseException):
            raise item
        return item

    def connect(self, host: str, port: int, timeout: float = 5.0) -> socket.socket:
        """A TCP connection from this namespace."""
        sock = self.open_socket()
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def wait_tcp(self, host: str, port: int, timeout: float = 10.0) -> None:
        """Wait until host:port accepts TCP connections from this namespace."""
        deadline = _monotonic() + timeout
        while True:
            try:
                self.connect(host, port, timeout=1.0).close()
                return
            except OSError as e:
                if _monotonic() > deadline:
                    raise WorldError(
                        f"{host}:{port} not listening in {self.name}: {e}"
                    ) from e
            time.sleep(0.02)  # noqa: TID251 - polling a real process


def wait_unix(path: str | Path, timeout: float = 10.0) -> None:
    """Wait until the unix stream socket at path accepts connections."""
    deadline = _monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return
        except OSError as e:
            if _monotonic() > deadline:
                raise WorldError(f"{path} not listening after {timeout}s: {e}") from e
        finally:
            sock.close()
        time.sleep(0.02)  # noqa: TID251 - polling a real process


class Proc:
    """A long-running process started in a namespace; its output goes to a file."""

    def __init__(
        self,
        name: str,
        ns: Netns,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.ns = ns
        self.argv = list(argv)
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                ns.exec_argv(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        # `ip netns exec` execs the program: this is its pid and its group.
        self.pid = self.popen.pid

    def __repr__(self) -> str:
        return f"Proc({self.name!r}, pid={self.pid}, ns={self.ns.name!r})"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 3.0) -> int | None:
        """SIGTERM the process group, then SIGKILL what is left."""
        if self.popen.poll() is not None:
            return self.popen.returncode
        # The leader is alive, so the group id is still ours.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5.0)
        return self.popen.returncode
