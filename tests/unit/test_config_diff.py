"""What a reload changes, and what it leaves for a restart (issue 11)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.config import ListenerConfig, parse_config
from postfix_mtasts.core.config_diff import diff_configs

BASE = """
[[listener]]
endpoint = "tcp:8461:interface=127.0.0.1"

[[listener]]
endpoint = "tcp:8462:interface=127.0.0.1"
protocol = "tcp_table"

[maps.postfix]
[maps.strict]
strict_testing = true
"""


class DiffTests(SynchronousTestCase):
    def diff(self, old: str, new: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        d = diff_configs(parse_config(old), parse_config(new))
        return d.changed, d.restart

    def test_same_file_changes_nothing(self) -> None:
        """Re-reading an unchanged file is a reload that changes nothing."""
        d = diff_configs(parse_config(BASE), parse_config(BASE))
        self.assertEqual((d.changed, d.restart), ((), ()))
        self.assertEqual(d.describe(), "nothing changed")
        self.assertEqual(len(d.listeners.kept), 2)

    def test_keys_named_as_the_file_spells_them(self) -> None:
        """Seconds keep their file name (``fetch.timeout``, not
        ``timeout_s``); maps by name; in the file's section order (G14)."""
        new = BASE.replace("[maps.postfix]", "[maps.postfix]\ndns_failure = 'temp'")
        new += "[fetch]\ntimeout = 5\n[server]\nlookup_budget = 4\n"
        new += "max_connections = 9\n[cache]\nmax_entries = 7\n[log]\nlevel = 'warn'\n"
        changed, restart = self.diff(BASE, new)
        self.assertEqual(
            changed,
            (
                "fetch.timeout",
                "cache.max_entries",
                "server.max_connections",
                "server.lookup_budget",
                "log.level",
                "maps.postfix.dns_failure",
            ),
        )
        self.assertEqual(restart, ())

    def test_maps_added_and_removed(self) -> None:
        """A map profile added or removed is named as such (G3)."""
        new = BASE.replace("[maps.strict]\nstrict_testing = true\n", "[maps.other]\n")
        changed, _ = self.diff(BASE, new)
        self.assertEqual(changed, ("maps.strict removed", "maps.other added"))

    def test_stores_and_control_socket_need_a_restart(self) -> None:
        """store, redis and control are opened once at start: listed for a
        restart, never among the changes applied."""
        new = BASE + (
            "[store]\npath = '/tmp/x.sqlite3'\n[redis]\nurl = 'redis://127.0.0.1'\n"
            "[control]\nsocket = '/tmp/c.sock'\n[dns]\nattempts = 3\n"
        )
        changed, restart = self.diff(BASE, new)
        self.assertEqual(changed, ("dns.attempts",))
        self.assertEqual(restart, ("store.path", "redis.url", "control.socket"))

    def test_report_receiver_needs_a_restart(self) -> None:
        """[reports] is bound and its store opened once at start, after the
        listeners: a change is listed for a restart, never half applied."""
        before = BASE + "[store]\npath = '/var/lib/x/p.sqlite3'\n"
        after = before + "[reports]\nendpoint = 'tcp:8080:interface=127.0.0.1'\n"
        changed, restart = self.diff(before, after + "max_body_bytes = 5\n")
        self.assertEqual(changed, ())
        self.assertEqual(restart, ("reports.endpoint", "reports.max_body_bytes"))

    def test_metrics_endpoint_needs_a_restart(self) -> None:
        """[metrics] is bound once at start (beside the listeners, it is
        not one of them): an endpoint or allow_remote change is listed for
        a restart, never applied, while the rest of the file still is."""
        before = BASE + "[metrics]\nendpoint = 'tcp:9461:interface=127.0.0.1'\n"
        after = BASE + (
            "[metrics]\nendpoint = 'tcp:9462:interface=127.0.0.1'\nallow_remote = true\n"
            "[fetch]\ntimeout = 5\n"
        )
        changed, restart = self.diff(before, after)
        self.assertEqual(changed, ("fetch.timeout",))
        self.assertEqual(restart, ("metrics.endpoint", "metrics.allow_remote"))
        _, restart = self.diff(BASE, before)  # switched on: a restart too
        self.assertEqual(restart, ("metrics.endpoint",))

    def test_listeners_by_endpoint(self) -> None:
        """A listener whose endpoint stays is kept (its socket untouched),
        even if it moved in the list; the others are added or removed.  A
        kept tcp_table listener's map changes in place; its protocol,
        owner or group need a new socket: restart (F7)."""
        new = """
[[listener]]
endpoint = "tcp:8462:interface=127.0.0.1"
protocol = "tcp_table"
map = "strict"

[[listener]]
endpoint = "unix:/run/x.sock"

[maps.postfix]
[maps.strict]
strict_testing = true
"""
        d = diff_configs(parse_config(BASE), parse_config(new))
        self.assertEqual(
            d.listeners.added, (ListenerConfig("unix:/run/x.sock", "socketmap"),)
        )
        self.assertEqual(
            [x.endpoint for x in d.listeners.removed], ["tcp:8461:interface=127.0.0.1"]
        )
        self.assertEqual(
            [(a.map, b.map) for a, b in d.listeners.kept], [("postfix", "strict")]
        )
        self.assertEqual(d.changed, ("listener[0].map",))
        self.assertEqual(
            d.describe(),
            "listener[0].map, listener unix:/run/x.sock added, "
            "listener tcp:8461:interface=127.0.0.1 removed",
        )
        protocol = new.replace('protocol = "tcp_table"\nmap = "strict"', "")
        d = diff_configs(parse_config(BASE), parse_config(protocol))
        self.assertEqual(d.restart, ("listener[0].protocol",))

    def test_touches(self) -> None:
        """``touches`` matches a section, a key, or a map below a prefix."""
        new = BASE.replace("strict_testing = true", "tlsrpt = true")
        d = diff_configs(parse_config(BASE), parse_config(new))
        self.assertTrue(d.touches("maps"))
        self.assertTrue(d.touches("maps.strict"))
        self.assertFalse(d.touches("map"))
        self.assertFalse(d.touches("refresh", "log"))
