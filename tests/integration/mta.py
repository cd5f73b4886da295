"""Postfix in $P-mta: ``postmap -q`` and private sending instances.

test-world.md sections 1 and 5: every Postfix command needs a main.cf;
``queue_directory`` exists beforehand and lies outside ``config_directory``;
``data_directory`` is left to ``postfix start``; ``maillog_file`` needs a
matching ``maillog_file_prefixes`` entry and the ``postlog`` service.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .netns import Netns, WorldError

__all__ = ["Delivery", "PostfixInstance", "postmap"]

SMTPD_PORT = 2525

_MASTER_CF = f"""\
127.0.0.1:{SMTPD_PORT} inet n - n - - smtpd
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


def postmap(
    ns: Netns, config_dir: Path, key: str, table: str, timeout: float = 10.0
) -> tuple[int, str, str]:
    """``postmap -q KEY TABLE`` in ``ns`` with MAIL_CONFIG=config_dir."""
    proc = ns.run(["postmap", "-c", str(config_dir), "-q", key, table], timeout=timeout)
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

    Listens on 127.0.0.1:2525 for injection, delivers by MX lookups through
    the test DNS, logs to ``log_file``.
    """

    def __init__(
        self,
        ns: Netns,
        directory: Path,
        ca_file: Path,
        settings: Mapping[str, str],
    ) -> None:
        self.ns = ns
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
        }
        self.settings.update(settings)
        self._write()
        (self.etc / "master.cf").write_text(_MASTER_CF)
        self._sent: dict[str, str] = {}  # rcpt -> queue id of the last send

    def _write(self) -> None:
        text = "".join(f"{k} = {v}\n" for k, v in self.settings.items())
        (self.etc / "main.cf").write_text(text)

    def postfix(self, *args: str, check: bool = True) -> str:
        proc = self.ns.run(["postfix", "-c", str(self.etc), *args], timeout=60)
        if check and proc.returncode != 0:
            raise WorldError(
                f"postfix {' '.join(args)} -> rc {proc.returncode}: "
                f"{proc.stdout}{proc.stderr}\n{self.log_text()[-3000:]}"
            )
        return proc.stdout + proc.stderr

    def start(self) -> None:
        proc = self.ns.run(["postfix", "-c", str(self.etc), "start"], timeout=60)
        if proc.returncode != 0:
            # Without a tty, postfix start prints nothing: ask again with one.
            why = self.ns.run(
                ["script", "-qc", f"postfix -c {self.etc} check", "/dev/null"]
            )
            raise WorldError(
                f"postfix -c {self.etc} start -> rc {proc.returncode}:\n"
                f"{why.stdout}{why.stderr}\n{self.log_text()[-3000:]}"
            )
        self.ns.wait_tcp("127.0.0.1", SMTPD_PORT)

    def running(self) -> bool:
        proc = self.ns.run(["postfix", "-c", str(self.etc), "status"])
        return proc.returncode == 0

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

    def queue(self) -> str:
        return self.ns.run(["postqueue", "-c", str(self.etc), "-p"]).stdout

    def flush(self) -> None:
        """Retry deferred mail now (``postqueue -f``)."""
        self.ns.run(["postqueue", "-c", str(self.etc), "-f"], check=True)

    def clear_queue(self) -> None:
        """Delete every queued message (``postsuper -d ALL``)."""
        self.ns.run(["postsuper", "-c", str(self.etc), "-d", "ALL"], check=True)

    def send(
        self,
        sender: str,
        rcpt: str,
        *,
        subject: str = "test",
        body: str = "hello from the test world",
    ) -> str:
        """Submit one message with swaks to 127.0.0.1:2525; return the queue id."""
        proc = self.ns.run(
            [
                "swaks",
                "--server",
                f"127.0.0.1:{SMTPD_PORT}",
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
