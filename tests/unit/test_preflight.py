"""Tests for postfix_mtasts.preflight: what the configuration names on the
system is checked before anything is bound, each fault a ConfigError naming
the key (issue 11: a missing CA file or socket directory was a traceback)."""

from __future__ import annotations

import grp
import os
import pwd
import socket
import tempfile

import attrs
import trustme
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.config import (
    Config,
    ConfigError,
    FetchConfig,
    ListenerConfig,
    MetricsConfig,
    PostfixConfig,
    RedisConfig,
    ReportsConfig,
    StoreConfig,
)
from postfix_mtasts.preflight import check_ca_file, check_serve


def _no_dns(host: str, port: None, family: int, kind: int) -> object:
    raise AssertionError(f"asked to resolve {host!r}")


class PreflightTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory(prefix="preflight-")
        self.addCleanup(directory.cleanup)
        self.dir = directory.name
        self.resolved: list[tuple[str, int]] = []

    def check(self, config: Config, environ: dict[str, str] | None = None) -> None:
        def resolve(host: str, port: None, family: int, kind: int) -> object:
            self.resolved.append((host, family))
            if host != "mail.example":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return []

        check_serve(config, environ=environ or {}, pid=42, resolve=resolve)

    def fails(self, config: Config, message: str, **kw: dict[str, str]) -> None:
        error = self.assertRaises(ConfigError, self.check, config, **kw)
        self.assertEqual(str(error), message)

    def listen(self, *listeners: ListenerConfig) -> Config:
        return attrs.evolve(Config(), listeners=listeners)

    def test_defaults_pass_without_lookups(self) -> None:
        """The built-in configuration needs nothing from the system."""
        check_serve(Config(), environ={}, resolve=_no_dns)

    def test_ca_file(self) -> None:
        """fetch.ca_file must exist, be readable and hold a PEM certificate
        (B3: the trust the fetches use)."""
        missing = os.path.join(self.dir, "none.pem")
        junk = os.path.join(self.dir, "junk.pem")
        good = os.path.join(self.dir, "ca.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        trustme.CA().cert_pem.write_to_path(good)
        for path, message in (
            (missing, f"cannot read {missing}: No such file or directory"),
            (self.dir, f"cannot read {self.dir}: Is a directory"),
            (junk, f"{junk}: not a PEM certificate bundle"),
        ):
            config = attrs.evolve(Config(), fetch=FetchConfig(ca_file=path))
            error = self.assertRaises(ConfigError, check_ca_file, config)
            self.assertTrue(str(error).startswith(f"fetch.ca_file: {message}"))
        check_ca_file(attrs.evolve(Config(), fetch=FetchConfig(ca_file=good)))

    def test_unix_socket_directory(self) -> None:
        """A unix listener's directory must exist (Twisted would fail the
        bind with a traceback); the socket itself need not."""
        here = os.path.join(self.dir, "a.sock")
        gone = os.path.join(self.dir, "no", "a.sock")
        self.check(self.listen(ListenerConfig(f"unix:{here}")))
        self.fails(
            self.listen(ListenerConfig("tcp:1"), ListenerConfig(f"unix:{gone}")),
            f"listener[1].endpoint: the directory {os.path.dirname(gone)} of "
            f"{gone} does not exist",
        )

    def test_metrics_endpoint(self) -> None:
        """[metrics] endpoint is checked like a listener's: its unix
        socket's directory, its interface's name, its systemd socket."""
        gone = os.path.join(self.dir, "no", "m.sock")
        for endpoint, message in (
            (
                f"unix:{gone}",
                f"the directory {os.path.dirname(gone)} of {gone} does not exist",
            ),
            ("tcp:9461:interface=nowhere", "interface 'nowhere': Name or service"),
            ("systemd:domain=INET:name=metrics", "no socket passed by systemd"),
        ):
            config = attrs.evolve(Config(), metrics=MetricsConfig(endpoint))
            error = self.assertRaises(ConfigError, self.check, config)
            self.assertTrue(str(error).startswith(f"metrics.endpoint: {message}"))
        here = os.path.join(self.dir, "m.sock")
        self.check(attrs.evolve(Config(), metrics=MetricsConfig(f"unix:{here}")))

    def test_report_receiver(self) -> None:
        """[reports] endpoint is checked like a listener's (an ssl:
        interface's name too), the key and certificate files an ssl:
        endpoint names must be readable (Twisted reads them when the
        endpoint is made), and the report store's directory must exist."""
        key = os.path.join(self.dir, "key.pem")
        with open(key, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\n")
        gone = os.path.join(self.dir, "none.pem")
        store = os.path.join(self.dir, "no", "r.sqlite3")
        for reports, message in (
            (
                ReportsConfig(f"ssl:8443:privateKey={key}:interface=nowhere"),
                "reports.endpoint: interface 'nowhere': Name or service",
            ),
            (
                ReportsConfig(f"ssl:8443:privateKey={key}:certKey={gone}"),
                f"reports.endpoint: certKey: cannot read {gone}: No such file",
            ),
            (
                ReportsConfig("tcp:8080:interface=127.0.0.1", store=store),
                f"reports.store: the directory {os.path.dirname(store)} of",
            ),
        ):
            config = attrs.evolve(Config(), reports=reports)
            error = self.assertRaises(ConfigError, self.check, config)
            self.assertTrue(str(error).startswith(message), str(error))
        good = ReportsConfig(f"ssl:8443:privateKey={key}", store=key + ".sqlite3")
        self.check(attrs.evolve(Config(), reports=good))
        beside = ReportsConfig("tcp:8080:interface=127.0.0.1")  # [store] path's
        self.check(attrs.evolve(Config(), reports=beside))

    def test_owner_and_group(self) -> None:
        """A unix socket's owner and group must be known to this system."""
        sock = f"unix:{self.dir}/s.sock"
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        self.check(self.listen(ListenerConfig(sock, owner=user, group=group)))
        path = sock.removeprefix("unix:")
        self.fails(
            self.listen(ListenerConfig(sock, owner="no-such-user-x")),
            "listener[0].owner: no user 'no-such-user-x' "
            f"(owner of the unix socket {path})",
        )
        self.fails(
            self.listen(ListenerConfig(sock, group="no-such-group-x")),
            "listener[0].group: no group 'no-such-group-x' "
            f"(group of the unix socket {path})",
        )

    def test_interface_host_name(self) -> None:
        """An interface given as a host name must resolve, for the family
        Twisted binds; addresses are never looked up."""
        self.check(
            self.listen(
                ListenerConfig("tcp:1:interface=mail.example"),
                ListenerConfig("tcp:2:interface=127.0.0.1"),
                ListenerConfig(r"tcp6:3:interface=\:\:1"),
            )
        )
        self.assertEqual(self.resolved, [("mail.example", socket.AF_INET)])
        self.fails(
            self.listen(ListenerConfig("tcp6:1:interface=lo")),
            "listener[0].endpoint: interface 'lo': Name or service not known",
        )
        self.assertEqual(self.resolved[-1], ("lo", socket.AF_INET6))

    def test_systemd_sockets(self) -> None:
        """A systemd: listener needs the socket systemd passed to this
        process (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; sd_listen_fds(3))."""
        by_index = self.listen(ListenerConfig("systemd:domain=INET:index=1"))
        by_name = self.listen(ListenerConfig("systemd:domain=UNIX:name=mtasts"))
        passed = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:mtasts"}
        self.check(by_index, passed)
        self.check(by_name, passed)
        none = (
            "listener[0].endpoint: no socket passed by systemd (start the "
            "daemon through its .socket unit, or use a tcp: or unix: endpoint)"
        )
        self.fails(by_index, none)
        self.fails(by_index, none, environ={**passed, "LISTEN_PID": "41"})
        self.fails(
            by_index,
            "listener[0].endpoint: index=1, but systemd passed 1 socket(s)",
            environ={**passed, "LISTEN_FDS": "1"},
        )
        self.fails(
            by_name,
            "listener[0].endpoint: systemd passed no socket named 'mtasts' "
            "(FileDescriptorName=; passed: a, b)",
            environ={**passed, "LISTEN_FDNAMES": "a:b"},
        )

    def test_store_directory(self) -> None:
        """The store file may be new, its directory may not (E1)."""
        good = os.path.join(self.dir, "p.sqlite3")
        bad = os.path.join(self.dir, "no", "p.sqlite3")
        self.check(attrs.evolve(Config(), store=StoreConfig(good)))
        self.fails(
            attrs.evolve(Config(), store=StoreConfig(bad)),
            f"store.path: the directory {os.path.dirname(bad)} of {bad} does not exist",
        )

    def test_fleet_key_file(self) -> None:
        """A fleet key file that cannot be read stops the start here, like
        any configuration error."""
        path = os.path.join(self.dir, "none.key")
        redis = RedisConfig(url="redis://127.0.0.1:1", fleet_key_file=path)
        error = self.assertRaises(
            ConfigError, self.check, attrs.evolve(Config(), redis=redis)
        )
        self.assertTrue(str(error).startswith("redis.fleet_key_file: cannot read"))

    def test_postfix_directory(self) -> None:
        """postfix.config_directory must be a directory (postconf -c)."""
        self.check(attrs.evolve(Config(), postfix=PostfixConfig(self.dir)))
        gone = os.path.join(self.dir, "postfix")
        self.fails(
            attrs.evolve(Config(), postfix=PostfixConfig(gone)),
            f"postfix.config_directory: {gone} is not a directory",
        )
