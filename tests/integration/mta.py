"""Postfix in $P-mta: ``postmap -q`` and private sending instances.

test-world.md sections 1 and 5: every Postfix command needs a main.cf;
``queue_directory`` exists beforehand and lies outside ``config_directory``;
``data_directory`` is left to ``postfix start``; ``maillog_file`` needs a
matching ``maillog_file_prefixes`` entry and the ``postlog`` service.

Two Postfix versions run side by side: the system's 3.7 and 3.10, which
scripts/install-test-deps unpacks from the release's backports into
``POSTFIX_310_ROOT`` without installing it.  The unpacked one runs with
main.cf's ``command_directory``, ``daemon_directory``, ``shlib_directory``
and ``meta_directory`` pointing into its tree, and ``LD_LIBRARY_PATH`` (which
wins over the binaries' RUNPATH /usr/lib/postfix, where 3.7's libraries of
the same names live) set for the first command and, through
``import_environment``, for every daemon its master starts.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .netns import Netns, WorldError

__all__ = [
    "POSTFIX_310_ROOT",
    "SYSTEM_VERSION",
    "VERSIONS",
    "Delivery",
    "PostfixBuild",
    "PostfixInstance",
    "postfix_build",
    "postmap",
    "write_settled",
]

SMTPD_PORT = 2525  # the first instance's; each further one takes the next port
_ports = itertools.count(SMTPD_PORT)

SYSTEM_VERSION = "3.7"
VERSIONS = (SYSTEM_VERSION, "3.10")
POSTFIX_310_ROOT = Path("/var/cache/postfix-mtasts-tests/postfix-3.10")

# Postfix's default import_environment (3.7 and 3.10 alike).
_IMPORT_ENVIRONMENT = (
    "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C "
    "POSTLOG_SERVICE POSTLOG_HOSTNAME"
)


@dataclass(frozen=True)
class PostfixBuild:
    """Where one Postfix version's programs are.

    ``root`` None is the installed system Postfix (commands on PATH);
    otherwise the directory a Debian package was unpacked into.
    """

    version: str
    root: Path | None = None

    def command(self, name: str) -> str:
        """The path of a command_directory program (postfix, postconf, ...)."""
        if self.root is None:
            return name
        return str(self.root / "usr" / "sbin" / name)

    @property
    def shlib_directory(self) -> Path:
        return (self.root or Path("/")) / "usr" / "lib" / "postfix"

    def package_version(self) -> str | None:
        """The Debian version unpacked (scripts/install-test-deps), if any."""
        if self.root is None:
            return None
        return (self.root / "VERSION").read_text().strip()

    def env(self) -> dict[str, str] | None:
        """The environment its commands need (None: inherit ours)."""
        if self.root is None:
            return None
        return {**os.environ, "LD_LIBRARY_PATH": str(self.shlib_directory)}

    def main_cf(self) -> dict[str, str]:
        """main.cf settings that make an instance use this build's files."""
        if self.root is None:
            return {}
        return {
            "command_directory": str(self.root / "usr" / "sbin"),
            "daemon_directory": str(self.shlib_directory / "sbin"),
            "shlib_directory": str(self.shlib_directory),
            "meta_directory": str(self.root / "etc" / "postfix"),
            "import_environment": (
                f"{_IMPORT_ENVIRONMENT} LD_LIBRARY_PATH={self.shlib_directory}"
            ),
        }


def postfix_build(version: str = SYSTEM_VERSION) -> PostfixBuild:
    """The build of ``version`` ("3.7": the system's, "3.10": unpacked)."""
    if version == SYSTEM_VERSION:
        return PostfixBuild(version)
    if version == "3.10":
        build = PostfixBuild(version, POSTFIX_310_ROOT)
        if not Path(build.command("postfix")).exists():
            raise WorldError(
                f"Postfix 3.10 is not unpacked in {POSTFIX_310_ROOT} "
                "(run scripts/install-test-deps as root)"
            )
        return build
    raise ValueError(f"unknown Postfix version {version!r} (one of {VERSIONS})")


_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup     unix  n - n 60   1 pickup
cleanup    unix  n - n -    0 cleanup
qmgr       unix  n - n 300  1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -    - trivial-rewrite
bounce     unix  - - n -    0 bounce
defer      unix  - - n -    0 bounce
trace      unix  - - n -    0 bounce
verify     unix  - - n -    1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -    - proxymap
proxywrite unix  - - n -    1 proxymap
smtp       unix  - - n -    - smtp
relay      unix  - - n -    - smtp
showq      unix  n - n -    - showq
error      unix  - - n -    - error
retry      unix  - - n -    - error
discard    unix  - - n -    - discard
local      unix  - n n -    - local
virtual    unix  - n n -    - virtual
lmtp       unix  - - n -    - lmtp
anvil      unix  - - n -    1 anvil
scache     unix  - - n -    1 scache
postlog    unix-dgram n - n - 1 postlogd
"""

_STATUS = re.compile(
    r"postfix\S*/[\w-]+\[\d+\]: (?P<queue_id>[0-9A-F]+): to=<(?P<rcpt>[^>]*)>,"
    r".*? relay=(?P<relay>\S+), .*?dsn=(?P<dsn>[\d.]+), "
    r"status=(?P<status>\w+) \((?P<text>.*)\)$"
)


def write_settled(path: Path, text: str) -> None:
    """Write a Postfix configuration file dated 10 s in the past.

    Every Postfix program re-reads a main.cf changed within the last second
    or so every 0.3 s until it is older (a file may still be being
    written): a fresh one costs each ``postfix start``, reload and
    ``postmap`` about 2 s.  The file is complete when dated back.
    """
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10 * 10**9))


def postmap(
    ns: Netns,
    config_dir: Path,
    key: str,
    table: str,
    timeout: float = 10.0,
    version: str = SYSTEM_VERSION,
) -> tuple[int, str, str]:
    """``postmap -q KEY TABLE`` in ``ns`` with MAIL_CONFIG=config_dir.

    ``config_dir`` holds the system version's (empty) main.cf; another
    version gets a subdirectory whose main.cf names its files.
    """
    build = postfix_build(version)
    if build.root is not None:
        config_dir = config_dir / f"postfix-{build.version}"
        if not (config_dir / "main.cf").exists():
            config_dir.mkdir(exist_ok=True)
            text = "".join(f"{k} = {v}\n" for k, v in build.main_cf().items())
            write_settled(config_dir / "main.cf", text)
    proc = ns.run(
        [build.command("postmap"), "-c", str(config_dir), "-q", key, table],
        timeout=timeout,
        env=build.env(),
    )
    return proc.returncode, proc.stdout, proc.stderr


@dataclass(frozen=True)
class Delivery:
    """One ``status=`` line of the smtp client."""

    queue_id: str
    rcpt: str
    relay: str
    dsn: str
    status: str  # sent, deferred, bounced
    text: str  # the reason in parentheses
    line: str


class PostfixInstance:
    """A private Postfix (``postfix -c DIR``) in a namespace.

    Listens on 127.0.0.1:``port`` (2525 for the first instance, then the
    next free one) for injection, delivers by MX lookups through the test
    DNS, logs to ``log_file``.  ``version`` picks the Postfix build
    (``VERSIONS``).
    """

    def __init__(
        self,
        ns: Netns,
        directory: Path,
        ca_file: Path,
        settings: Mapping[str, str],
        *,
        version: str = SYSTEM_VERSION,
        port: int | None = None,
    ) -> None:
        self.ns = ns
        self.build = postfix_build(version)
        self.version = self.build.version
        self.port = next(_ports) if port is None else port
        self.directory = directory
        self.etc = directory / "etc"
        self.spool = directory / "spool"
        self.log_file = directory / "log" / "maillog"
        for d in (self.etc, self.spool, self.log_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.settings: dict[str, str] = {
            "compatibility_level": "3.6",
            "config_directory": str(self.etc),
            "queue_directory": str(self.spool),
            "data_directory": str(directory / "data"),
            "maillog_file": str(self.log_file),
            "maillog_file_prefixes": f"/var, /dev/stdout, {self.log_file.parent}",
            "myhostname": "sender.test",
            "mydomain": "sender.test",
            "myorigin": "sender.test",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "default_transport": "smtp",
            "biff": "no",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtp_dns_support_level": "enabled",
            "dnssec_probe": "",
            "smtp_host_lookup": "dns",
            "smtp_address_preference": "ipv4",
            "smtp_tls_security_level": "may",
            "smtp_tls_policy_maps": "",
            "smtp_tls_CAfile": str(ca_file),
            "smtp_tls_CApath": "",
            "smtp_tls_loglevel": "1",
            "smtp_tls_session_cache_database": "",
            "queue_run_delay": "5s",
            "minimal_backoff_time": "5s",
            "maximal_backoff_time": "10s",
            "smtp_connect_timeout": "5s",
            **self.build.main_cf(),
        }
        self.settings.update(settings)
        self._write()
        (self.etc / "master.cf").write_text(_MASTER_CF.format(port=self.port))
        self._sent: dict[str, str] = {}  # rcpt -> queue id of the last send

    def _write(self) -> None:
        text = "".join(f"{k} = {v}\n" for k, v in self.settings.items())
        write_settled(self.etc / "main.cf", text)

    def _run(
        self, command: str, *args: str, timeout: float = 30.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """One of this build's commands in the namespace, for this instance."""
        return self.ns.run(
            [self.build.command(command), "-c", str(self.etc), *args],
            timeout=timeout,
            check=check,
            env=self.build.env(),
        )

    def postconf(self, *args: str) -> str:
        """``postconf -c ETC ARGS`` of this build (e.g. ``-dh mail_version``)."""
        proc = self._run("postconf", *args, check=True)
        return proc.stdout

    def postfix(self, *args: str, check: bool = True) -> str:
        proc = self._run("postfix", *args, timeout=60)
        if check and proc.returncode != 0:
            raise WorldError(
                f"postfix {' '.join(args)} -> rc {proc.returncode}: "
                f"{proc.stdout}{proc.stderr}\n{self.log_text()[-3000:]}"
            )
        return proc.stdout + proc.stderr

    def start(self) -> None:
        proc = self._run("postfix", "start", timeout=60)
        if proc.returncode != 0:
            # Without a tty, postfix start prints nothing: ask again with one.
            check = f"{self.build.command('postfix')} -c {self.etc} check"
            why = self.ns.run(
                ["script", "-qc", check, "/dev/null"], env=self.build.env()
            )
            raise WorldError(
                f"postfix -c {self.etc} start -> rc {proc.returncode}:\n"
                f"{why.stdout}{why.stderr}\n{self.log_text()[-3000:]}"
            )
        self.ns.wait_tcp("127.0.0.1", self.port)

    def running(self) -> bool:
        return self._run("postfix", "status").returncode == 0

    def stop(self) -> None:
        if self.running():
            self.postfix("stop", check=False)

    def configure(self, **settings: str) -> None:
        """Change main.cf settings and ``postfix reload``."""
        self.settings.update(settings)
        self._write()
        if self.running():
            self.postfix("reload")

    def log_text(self) -> str:
        if not self.log_file.exists():
            return ""
        return self.log_file.read_text(errors="replace")

    def log_lines(self, since: int = 0) -> list[str]:
        """The maillog's lines from index ``since`` on.

        ``mark = len(instance.log_lines())`` before a send, then
        ``log_lines(mark)`` is what that delivery logged.
        """
        return self.log_text().splitlines()[since:]

    def master_executable(self) -> Path:
        """The program the running master process executes (/proc/PID/exe)."""
        pid = int((self.spool / "pid" / "master.pid").read_text().split()[0])
        return Path(os.readlink(f"/proc/{pid}/exe"))

    def queue(self) -> str:
        return self._run("postqueue", "-p").stdout

    def flush(self) -> None:
        """Retry deferred mail now (``postqueue -f``)."""
        self._run("postqueue", "-f", check=True)

    def clear_queue(self) -> None:
        """Delete every queued message (``postsuper -d ALL``)."""
        self._run("postsuper", "-d", "ALL", check=True)

    def send(
        self,
        sender: str,
        rcpt: str,
        *,
        subject: str = "test",
        body: str = "hello from the test world",
    ) -> str:
        """Submit one message with swaks to 127.0.0.1:port; return the queue id."""
        proc = self.ns.run(
            [
                "swaks",
                "--server",
                f"127.0.0.1:{self.port}",
                "--from",
                sender,
                "--to",
                rcpt,
                "--helo",
                "client.sender.test",
                "--header",
                f"Subject: {subject}",
                "--body",
                body,
                "--timeout",
                "20",
            ],
            timeout=60,
        )
        m = re.search(r"queued as ([0-9A-F]+)", proc.stdout)
        if proc.returncode != 0 or m is None:
            raise WorldError(
                f"swaks failed (rc {proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        self._sent[rcpt.lower()] = m.group(1)
        return m.group(1)

    def statuses(self, rcpt: str | None = None) -> list[Delivery]:
        """Every ``status=`` line so far (for rcpt), oldest first."""
        out = []
        for line in self.log_text().splitlines():
            m = _STATUS.search(line)
            if m and (rcpt is None or m["rcpt"].lower() == rcpt.lower()):
                out.append(
                    Delivery(
                        queue_id=m["queue_id"],
                        rcpt=m["rcpt"],
                        relay=m["relay"],
                        dsn=m["dsn"],
                        status=m["status"],
                        text=m["text"],
                        line=line,
                    )
                )
        return out

    def wait_status(
        self, rcpt: str, timeout: float = 30.0, queue_id: str | None = None
    ) -> Delivery:
        """The first status= line for rcpt's last ``send`` (or ``queue_id``).

        Polls the maillog until ``timeout``; raises AssertionError with the
        log's tail if none shows up.
        """
        wanted = queue_id or self._sent.get(rcpt.lower())
        deadline = time.monotonic() + timeout
        while True:
            for delivery in self.statuses(rcpt):
                if wanted is None or delivery.queue_id == wanted:
                    return delivery
            if time.monotonic() > deadline:
                tail = "\n".join(self.log_text().splitlines()[-40:])
                raise AssertionError(
                    f"no status= for {rcpt} (queue id {wanted}) within {timeout}s:\n"
                    f"{tail}"
                )
            time.sleep(0.05)  # noqa: TID251 - polling a real process

    def deliver(self, domain: str) -> tuple[Delivery, str]:
        """Send one message to a fresh address at ``domain``: its first
        status= line, and everything this instance logged from the send to
        that line.  The queue is emptied afterwards."""
        rcpt = f"u{secrets.token_hex(4)}@{domain}"
        mark = len(self.log_lines())
        self.send("sender@sender.test", rcpt)
        try:
            delivery = self.wait_status(rcpt)
        finally:
            self.clear_queue()
        return delivery, "\n".join(self.log_lines(mark))
