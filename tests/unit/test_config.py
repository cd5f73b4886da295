"""Tests for postfix_mtasts.core.config: TOML text to a frozen Config."""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Literal

import attrs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.config import (
    CacheConfig,
    Config,
    ConfigError,
    ControlConfig,
    DaneSetting,
    DnsConfig,
    DnssecProbe,
    FetchConfig,
    ListenerConfig,
    LogConfig,
    MapConfig,
    PostfixConfig,
    ServerConfig,
    StoreConfig,
    load,
    parse_config,
)
from postfix_mtasts.core.config_postfix import MAX_DIRECTORY_CHARS
from postfix_mtasts.core.config_toml import Table, rule, section

SHIPPED = Path(__file__).parents[2] / "conf" / "postfix-mtasts.toml"


class ConfigErrorAssertions(SynchronousTestCase):
    def assertConfigError(self, text: str, message: str) -> ConfigError:
        """Parsing ``text`` fails with exactly ``message``."""
        error: ConfigError = self.assertRaises(ConfigError, parse_config, text)
        self.assertEqual(str(error), message)
        return error

    def assertErrorStartsWith(self, text: str, prefix: str) -> None:
        error = self.assertRaises(ConfigError, parse_config, text)
        self.assertTrue(str(error).startswith(prefix), str(error))


class DefaultsTests(SynchronousTestCase):
    def test_empty_text_gives_defaults(self) -> None:
        """An empty file gives the documented defaults: one socketmap listener
        on 127.0.0.1:8461 (F7), one map named "postfix" failing open."""
        config = parse_config("")
        self.assertEqual(config, Config())
        self.assertEqual(
            config.listeners,
            (
                ListenerConfig(
                    endpoint="tcp:8461:interface=127.0.0.1",
                    protocol="socketmap",
                    map="postfix",
                    owner=None,
                    group=None,
                ),
            ),
        )
        self.assertEqual(
            config.maps, (("postfix", MapConfig(False, False, "notfound")),)
        )
        self.assertEqual(config.dns, DnsConfig((), 5.0, 2))
        self.assertEqual(config.fetch, FetchConfig(20.0, None, 32))
        self.assertEqual(config.cache, CacheConfig(100_000, 3600.0, 300.0, 300.0))
        self.assertEqual(config.server, ServerConfig(512, 120.0, 15.0, 10_000))
        self.assertEqual(config.log, LogConfig("info", "text"))
        self.assertEqual(config.warnings, ())

    def test_load_none_gives_defaults(self) -> None:
        """load(None) needs no file and gives the embedded defaults."""
        self.assertEqual(load(None), Config())

    def test_durations_are_floats(self) -> None:
        """Durations given as TOML integers become float seconds."""
        config = parse_config("[fetch]\ntimeout = 30\n[cache]\nnegative_ttl = 0\n")
        self.assertEqual(config.fetch.timeout_s, 30.0)
        self.assertIsInstance(config.fetch.timeout_s, float)
        self.assertEqual(config.cache.negative_ttl_s, 0.0)

    def test_frozen(self) -> None:
        """Config values are immutable."""
        config = parse_config("")
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError, setattr, config, "log", None
        )
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError,
            setattr,
            config.cache,
            "max_entries",
            1,
        )


class ShippedFileTests(SynchronousTestCase):
    def test_shipped_file_is_defaults(self) -> None:
        """conf/postfix-mtasts.toml as shipped parses to the embedded
        defaults plus the persistent store and the control socket in the
        unit's directories, which the defaults leave off (E1, issue 11)."""
        self.assertEqual(
            load(str(SHIPPED)),
            attrs.evolve(
                Config(),
                store=StoreConfig("/var/lib/postfix-mtasts/policies.sqlite3"),
                control=ControlConfig("/run/postfix-mtasts/control.sock"),
            ),
        )

    def test_defaults_touch_no_disk(self) -> None:
        """Without a file the daemon keeps policies in memory and opens no
        control socket: nothing is written outside the process (issue 11)."""
        self.assertEqual((Config().store.path, Config().control.socket), ("", ""))

    def test_uncommented_defaults_are_defaults(self) -> None:
        """Uncommenting every "# key = value" line and table header of the
        shipped file still gives the defaults: the documented values are the
        real ones and every documented key exists."""
        lines = SHIPPED.read_text(encoding="utf-8").splitlines()
        pattern = re.compile(r"# (\[.*\]|[a-z_]+ = .*)")
        text = "\n".join(m[1] for line in lines if (m := pattern.fullmatch(line)))
        self.assertIn("[cache]", text)
        self.assertEqual(parse_config(text), Config())

    def test_examples_parse(self) -> None:
        """The commented examples (a unix-socket listener for group postfix
        and a tcp_table listener) are valid configuration."""
        lines = SHIPPED.read_text(encoding="utf-8").splitlines()
        pattern = re.compile(r"#   (\[.*\]|[a-z_]+ = [\"\[0-9tf].*)")
        text = "\n".join(m[1] for line in lines if (m := pattern.fullmatch(line)))
        config = parse_config(text)
        self.assertEqual(
            config.listeners,
            (
                ListenerConfig(
                    "unix:/run/postfix-mtasts/mtasts.sock:mode=660",
                    "socketmap",
                    group="postfix",
                ),
                ListenerConfig("tcp:8462:interface=127.0.0.1", "tcp_table", "postfix"),
            ),
        )
        self.assertEqual(config.warnings, ())


class FileTests(SynchronousTestCase):
    def _write(self, data: bytes) -> str:
        fd, path = tempfile.mkstemp(suffix=".toml")
        os.write(fd, data)
        os.close(fd)
        self.addCleanup(os.unlink, path)
        return path

    def test_load_reads_file(self) -> None:
        """load(path) parses the file's contents."""
        path = self._write(b'[log]\nlevel = "debug"\n')
        self.assertEqual(load(path).log.level, "debug")

    def test_load_error_names_file(self) -> None:
        """An invalid file's error names the file, then the key path."""
        path = self._write(b"[log]\nlevel = 3\n")
        error = self.assertRaises(ConfigError, load, path)
        self.assertEqual(
            str(error),
            f'{path}: log.level: expected "debug", "info", "warn" or "error", got 3',
        )

    def test_missing_file(self) -> None:
        """A file that cannot be read is a ConfigError naming it."""
        directory = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, directory)
        path = os.path.join(directory, "missing.toml")
        error = self.assertRaises(ConfigError, load, path)
        self.assertTrue(str(error).startswith(f"{path}: cannot read: "), str(error))

    def test_not_utf8(self) -> None:
        """A file that is not UTF-8 is a ConfigError, not a UnicodeDecodeError."""
        path = self._write(b"# \xff\n")
        error = self.assertRaises(ConfigError, load, path)
        self.assertTrue(str(error).startswith(f"{path}: not UTF-8"), str(error))


class SyntaxAndUnknownKeyTests(ConfigErrorAssertions):
    def test_toml_syntax_error(self) -> None:
        """A TOML syntax error becomes a ConfigError with the parser's position."""
        self.assertErrorStartsWith("[log\n", "invalid TOML: ")

    def test_unknown_top_level_key(self) -> None:
        """An unknown table or key at the top is rejected by name."""
        self.assertConfigError("[listeners]\n", "listeners: unknown key")
        self.assertConfigError("verbose = true\n", "verbose: unknown key")

    def test_unknown_key_in_section(self) -> None:
        """A misspelt key inside a section names the full key path."""
        self.assertConfigError("[dns]\ntimout = 1\n", "dns.timout: unknown key")
        self.assertConfigError(
            "[maps.postfix]\nstrict = true\n", "maps.postfix.strict: unknown key"
        )
        self.assertConfigError(
            '[[listener]]\nendpoint = "tcp:1:interface=127.0.0.1"\nport = 1\n',
            "listener[0].port: unknown key",
        )

    def test_unit_suffixed_name_is_not_a_key(self) -> None:
        """The Python field name (timeout_s) is not accepted in the file."""
        self.assertConfigError(
            "[fetch]\ntimeout_s = 1\n", "fetch.timeout_s: unknown key"
        )

    def test_section_must_be_table(self) -> None:
        """A section given as a plain value is rejected."""
        self.assertConfigError("dns = 1\n", "dns: expected a table, got 1")


class MapTests(ConfigErrorAssertions):
    def test_map_settings(self) -> None:
        """[maps.NAME] sets strict_testing, tlsrpt and dns_failure."""
        config = parse_config(
            "[maps.postfix]\nstrict_testing = true\ntlsrpt = true\n"
            'dns_failure = "temp"\n'
        )
        self.assertEqual(config.map_named("postfix"), MapConfig(True, True, "temp"))

    def test_defined_maps_replace_default(self) -> None:
        """Defining [maps.X] replaces the default set: "postfix" no longer
        exists unless defined; file order is kept."""
        config = parse_config("[maps.new]\ntlsrpt = true\n[maps.old]\n")
        self.assertEqual(config.map_names, ("new", "old"))
        self.assertIsNone(config.map_named("postfix"))
        self.assertEqual(config.map_named("old"), MapConfig())
        self.assertEqual(config.map_named("new"), MapConfig(tlsrpt=True))

    def test_bad_dns_failure(self) -> None:
        """dns_failure must be "notfound" or "temp"; the error names the map."""
        self.assertConfigError(
            '[maps.postfix]\ndns_failure = "x"\n',
            'maps.postfix.dns_failure: expected "notfound" or "temp", got "x"',
        )

    def test_default_level(self) -> None:
        """default_level is "may" unless set; "encrypt" and "dane" are the
        other levels a report-only answer may carry (D14, L2, L4)."""
        self.assertEqual(MapConfig().default_level, "may")
        for level in ("may", "encrypt", "dane"):
            config = parse_config(f'[maps.postfix]\ndefault_level = "{level}"\n')
            self.assertEqual(
                config.map_named("postfix"), MapConfig(default_level=level)
            )

    def test_bad_default_level(self) -> None:
        """A level that would enforce (secure, verify, dane-only) or disable
        TLS (none) is no default_level: the error names the map (L4)."""
        for level in ("secure", "verify", "dane-only", "none", "MAY", ""):
            self.assertConfigError(
                f'[maps.postfix]\ndefault_level = "{level}"\n',
                "maps.postfix.default_level: expected "
                f'"may", "encrypt" or "dane", got "{level}"',
            )

    def test_dane_and_match(self) -> None:
        """dane is "auto" and match is "patterns" unless set (D13, G22)."""
        self.assertEqual((MapConfig().dane, MapConfig().match), ("auto", "patterns"))
        config = parse_config('[maps.postfix]\ndane = false\nmatch = "mx"\n')
        self.assertEqual(config.map_named("postfix"), MapConfig(dane=False, match="mx"))
        self.assertConfigError(
            '[maps.postfix]\nmatch = "hostname"\n',
            'maps.postfix.match: expected "patterns" or "mx", got "hostname"',
        )

    def test_dane_three_forms(self) -> None:
        """dane takes true, false or "auto" (on where Postfix does DANE:
        D13, V6); the word as written, resolved only at start."""
        forms: list[tuple[str, DaneSetting]] = [
            ("true", True),
            ("false", False),
            ('"auto"', "auto"),
        ]
        for written, value in forms:
            config = parse_config(f"[maps.postfix]\ndane = {written}\n")
            self.assertEqual(config.map_named("postfix"), MapConfig(dane=value))

    def test_bad_dane(self) -> None:
        """Any other value is an error naming the key and the three forms."""
        for written, shown in (
            ('"yes"', '"yes"'),
            ('"Auto"', '"Auto"'),
            ('"true"', '"true"'),
            ("1", "1"),
            ('""', '""'),
            ("[]", "an array"),
        ):
            self.assertConfigError(
                f"[maps.relay]\ndane = {written}\n",
                f'maps.relay.dane: expected true, false or "auto", got {shown}',
            )

    def test_bad_boolean(self) -> None:
        """Booleans must be TOML true/false, not strings."""
        self.assertConfigError(
            '[maps.postfix]\ntlsrpt = "yes"\n',
            'maps.postfix.tlsrpt: expected true or false, got "yes"',
        )

    def test_empty_maps_table(self) -> None:
        """An empty [maps] table would leave no map at all: rejected."""
        self.assertErrorStartsWith("[maps]\n", "maps: define at least one [maps.NAME]")

    def test_bad_map_name(self) -> None:
        """A map name with characters Postfix cannot send (space) is rejected."""
        self.assertConfigError(
            '[maps."a b"]\n',
            'maps."a b": a map name may hold only letters, digits, "_" and "-"',
        )

    def test_map_must_be_table(self) -> None:
        """maps.NAME must be a table."""
        self.assertConfigError(
            "[maps]\npostfix = 1\n", "maps.postfix: expected a table, got 1"
        )


class ListenerTests(ConfigErrorAssertions):
    def test_several_listeners(self) -> None:
        """Each [[listener]] becomes one ListenerConfig, in order; giving any
        replaces the default listener."""
        config = parse_config(
            '[[listener]]\nendpoint = "unix:/run/x.sock:mode=660"\n'
            'owner = "mtasts"\ngroup = "postfix"\n'
            '[[listener]]\nendpoint = "tcp:8462:interface=127.0.0.1"\n'
            'protocol = "tcp_table"\n'
            '[[listener]]\nendpoint = "systemd:domain=INET:index=0"\n'
        )
        self.assertEqual(
            config.listeners,
            (
                ListenerConfig(
                    "unix:/run/x.sock:mode=660",
                    "socketmap",
                    "postfix",
                    "mtasts",
                    "postfix",
                ),
                ListenerConfig("tcp:8462:interface=127.0.0.1", "tcp_table", "postfix"),
                ListenerConfig("systemd:domain=INET:index=0"),
            ),
        )
        self.assertEqual(config.warnings, ())

    def test_bad_protocol_names_index(self) -> None:
        """A bad protocol names the listener by index."""
        self.assertConfigError(
            '[[listener]]\nendpoint = "tcp:1:interface=127.0.0.1"\n'
            '[[listener]]\nendpoint = "tcp:2:interface=127.0.0.1"\nprotocol = "http"\n',
            'listener[1].protocol: expected "socketmap" or "tcp_table", got "http"',
        )

    def test_bad_endpoint_kind(self) -> None:
        """Only tcp:, tcp6:, unix: and systemd: endpoints are accepted."""
        for endpoint in ("ssl:443", "tcp", "8461", "TCP:8461", ""):
            self.assertConfigError(
                f'[[listener]]\nendpoint = "{endpoint}"\n',
                "listener[0].endpoint: expected a string starting with tcp:, tcp6:, "
                f'unix: or systemd:, got "{endpoint}"',
            )

    def test_duplicate_endpoint(self) -> None:
        """Two listeners on the same endpoint are rejected before bind fails."""
        self.assertConfigError(
            '[[listener]]\nendpoint = "unix:/x"\n[[listener]]\nendpoint = "unix:/x"\n',
            "listener[1].endpoint: same as listener[0]",
        )

    def test_tcp_table_map_default_and_named(self) -> None:
        """A tcp_table listener answers with [maps.NAME] given by `map`
        (default "postfix")."""
        config = parse_config(
            '[maps.edge]\n[[listener]]\nendpoint = "tcp:8462:interface=127.0.0.1"\n'
            'protocol = "tcp_table"\nmap = "edge"\n'
        )
        self.assertEqual(config.listeners[0].map, "edge")

    def test_tcp_table_map_must_exist(self) -> None:
        """A tcp_table listener naming an undefined map is rejected, also when
        defined maps replaced the default "postfix"."""
        self.assertConfigError(
            '[[listener]]\nendpoint = "tcp:1:interface=127.0.0.1"\n'
            'protocol = "tcp_table"\nmap = "nosuch"\n',
            'listener[0].map: no [maps.NAME] defines "nosuch"',
        )
        self.assertConfigError(
            '[maps.edge]\n[[listener]]\nendpoint = "tcp:1:interface=127.0.0.1"\n'
            'protocol = "tcp_table"\n',
            'listener[0].map: no [maps.NAME] defines "postfix"',
        )

    def test_map_on_socketmap_listener_rejected(self) -> None:
        """`map` on a socketmap listener would be silently ignored (the map
        name comes with each request), so it is an error."""
        self.assertErrorStartsWith(
            '[[listener]]\nmap = "postfix"\n', "listener[0].map: only for tcp_table"
        )

    def test_owner_group_only_for_unix(self) -> None:
        """owner/group apply to unix: sockets only; "" means unchanged anywhere."""
        self.assertConfigError(
            '[[listener]]\nendpoint = "tcp:1:interface=127.0.0.1"\ngroup = "postfix"\n',
            "listener[0].group: only for unix: endpoints",
        )
        self.assertConfigError(
            '[[listener]]\nendpoint = "systemd:domain=UNIX:index=0"\nowner = "x"\n',
            "listener[0].owner: only for unix: endpoints",
        )
        config = parse_config('[[listener]]\nowner = ""\ngroup = ""\n')
        self.assertEqual(config.listeners, (ListenerConfig(),))

    def test_listener_must_be_array_of_tables(self) -> None:
        """[listener] (single brackets) or an empty array is rejected."""
        self.assertConfigError(
            "[listener]\n",
            "listener: expected one or more [[listener]] tables, got a table",
        )
        self.assertConfigError(
            "listener = []\n",
            "listener: expected one or more [[listener]] tables, got an array",
        )
        self.assertConfigError(
            "listener = [1]\n", "listener[0]: expected a table, got 1"
        )


class LoopbackWarningTests(SynchronousTestCase):
    def _warnings_for(
        self, endpoint: str, protocol: str = "socketmap"
    ) -> tuple[str, ...]:
        return parse_config(
            f"[[listener]]\nendpoint = '{endpoint}'\nprotocol = '{protocol}'\n"
        ).warnings

    def test_loopback_endpoints_no_warning(self) -> None:
        """TCP listeners bound to loopback, in every strports spelling, and
        unix:/systemd: listeners give no warning (F7)."""
        for endpoint in (
            "tcp:8461:interface=127.0.0.1",
            "tcp:port=8461:interface=127.0.0.2",
            "tcp:8461:127.0.0.1",
            "tcp:interface=127.0.0.1:port=8461",
            r"tcp6:8461:interface=\:\:1",
            r"tcp6:8461:50:\:\:1",
            "tcp:8461:interface=localhost",
            "unix:/run/postfix-mtasts/mtasts.sock:mode=660",
            "systemd:domain=INET:index=0",
        ):
            self.assertEqual(self._warnings_for(endpoint), (), endpoint)

    def test_all_interfaces_warns(self) -> None:
        """A socketmap listener on all interfaces is allowed but warned about,
        naming the listener and rule F7."""
        self.assertEqual(
            self._warnings_for("tcp:8461"),
            (
                'listener[0].endpoint: "tcp:8461" listens on all interfaces; '
                "socketmap requests are unauthenticated, so bind to 127.0.0.1, ::1 "
                "or a unix: socket unless a firewall guards the port (F7)",
            ),
        )
        for endpoint in ("tcp:8461:interface=0.0.0.0", "tcp6:8461", "tcp:8461:"):
            (warning,) = self._warnings_for(endpoint)
            self.assertIn("listens on all interfaces", warning)

    def test_public_address_warns(self) -> None:
        """A TCP listener on a non-loopback address (or a host name) warns (F7)."""
        (warning,) = self._warnings_for("tcp:8461:interface=192.0.2.1")
        self.assertIn("listens on 192.0.2.1, not a loopback address", warning)
        (warning,) = self._warnings_for(r"tcp6:8461:interface=2001\:db8\:\:1")
        self.assertIn("listens on 2001:db8::1, not a loopback address", warning)
        (warning,) = self._warnings_for("tcp:8461:interface=mail.example")
        self.assertIn("(F7)", warning)

    def test_tcp_table_warns_too(self) -> None:
        """tcp_table is just as unauthenticated, so it is warned about too (F7)."""
        (warning,) = self._warnings_for("tcp:8462", protocol="tcp_table")
        self.assertIn("tcp_table requests are unauthenticated", warning)


class DnsTests(ConfigErrorAssertions):
    def test_nameserver_forms(self) -> None:
        """Nameservers may be "ip", "ip:port", "[ip]:port", "[ip]" or a bare
        IPv6 address; the port defaults to 53 and addresses are normalised
        (the whole grammar: test_nameserver)."""
        config = parse_config(
            "[dns]\nnameservers = ['192.0.2.53', '192.0.2.54:5353', "
            "'[2001:db8::53]:5300', '2001:DB8::54', '[::1]', '[192.0.2.55]:53']\n"
        )
        self.assertEqual(
            config.dns.nameservers,
            (
                ("192.0.2.53", 53),
                ("192.0.2.54", 5353),
                ("2001:db8::53", 5300),
                ("2001:db8::54", 53),
                ("::1", 53),
                ("192.0.2.55", 53),
            ),
        )

    def test_case_randomization(self) -> None:
        """DNS 0x20 is on unless [dns] case_randomization = false; the value
        is a boolean."""
        self.assertTrue(parse_config("").dns.case_randomization)
        config = parse_config("[dns]\ncase_randomization = false\n")
        self.assertFalse(config.dns.case_randomization)
        self.assertConfigError(
            '[dns]\ncase_randomization = "no"\n',
            'dns.case_randomization: expected true or false, got "no"',
        )

    def test_bad_nameservers(self) -> None:
        """Host names, bad ports and junk are rejected with the index of the
        bad entry."""
        for bad in (
            "ns1.example",
            "192.0.2.1:0",
            "192.0.2.1:65536",
            "192.0.2.1:",
            "192.0.2.1:x",
            "[2001:db8::1",
            "[2001:db8::1]53",
            "",
        ):
            self.assertConfigError(
                f"[dns]\nnameservers = ['192.0.2.9', '{bad}']\n",
                'dns.nameservers[1]: expected an IP address, "ip:port" or '
                f'"[ip]:port", got "{bad}"',
            )

    def test_nameservers_must_be_strings(self) -> None:
        """nameservers is an array of strings."""
        self.assertConfigError(
            "[dns]\nnameservers = '192.0.2.1'\n",
            'dns.nameservers: expected an array of strings, got "192.0.2.1"',
        )
        self.assertConfigError(
            "[dns]\nnameservers = [53]\n",
            "dns.nameservers: expected an array of strings, got an array",
        )

    def test_dnssec_probe(self) -> None:
        """dnssec_probe is "ns:." unless set, "type:name" like Postfix's, ""
        for none (D13)."""
        self.assertEqual(parse_config("").dns.dnssec_probe, DnssecProbe("NS", "."))
        for text, probe in [
            ("soa:sec.test", DnssecProbe("SOA", "sec.test")),
            ("DNSKEY:example.org.", DnssecProbe("DNSKEY", "example.org.")),
            ("", None),
        ]:
            config = parse_config(f'[dns]\ndnssec_probe = "{text}"\n')
            self.assertEqual(config.dns.dnssec_probe, probe)

    def test_bad_dnssec_probe(self) -> None:
        """An unknown type, a missing name or a malformed one is an error."""
        for bad in ("ns", "ptr:.", "ns:", "ns:a..b", "ns:-a.example", "ns:a b"):
            self.assertConfigError(
                f'[dns]\ndnssec_probe = "{bad}"\n',
                'dns.dnssec_probe: expected "" or "type:name" with type one of a, '
                'aaaa, dnskey, mx, ns, soa, txt and a DNS name (e.g. "ns:."), '
                f'got "{bad}"',
            )

    def test_timeout_and_attempts(self) -> None:
        """dns.timeout must be positive seconds, attempts an integer >= 1."""
        config = parse_config("[dns]\ntimeout = 1.5\nattempts = 3\n")
        self.assertEqual((config.dns.timeout_s, config.dns.attempts), (1.5, 3))
        self.assertConfigError(
            "[dns]\ntimeout = 0\n", "dns.timeout: expected seconds > 0 and <= 60, got 0"
        )
        self.assertConfigError(
            "[dns]\nattempts = 0\n",
            "dns.attempts: expected an integer >= 1 and <= 10, got 0",
        )


class PostfixTests(ConfigErrorAssertions):
    def test_config_directory(self) -> None:
        """[postfix] config_directory: None (Postfix's own default) unless
        set; "" is the default too."""
        self.assertIsNone(parse_config("").postfix.config_directory)
        self.assertIsNone(
            parse_config('[postfix]\nconfig_directory = ""\n').postfix.config_directory
        )
        config = parse_config('[postfix]\nconfig_directory = "/etc/postfix-out"\n')
        self.assertEqual(config.postfix, PostfixConfig("/etc/postfix-out"))

    def test_bad_config_directory(self) -> None:
        """A relative path, control characters, an absurd length or a
        non-string are errors naming the key; unknown keys too."""
        long = "/" + "d" * MAX_DIRECTORY_CHARS
        for written, shown in (
            ('"etc/postfix"', '"etc/postfix"'),
            ('"/etc/post\\nfix"', '"/etc/post\\nfix"'),
            (f'"{long}"', None),
        ):
            text = f"[postfix]\nconfig_directory = {written}\n"
            if shown is None:
                self.assertErrorStartsWith(text, "postfix.config_directory: expected")
            else:
                self.assertConfigError(
                    text,
                    'postfix.config_directory: expected "" or an absolute path '
                    f"(the directory of Postfix's main.cf), got {shown}",
                )
        self.assertConfigError(
            "[postfix]\nconfig_directory = 1\n",
            "postfix.config_directory: expected a string, got 1",
        )
        self.assertConfigError(
            '[postfix]\npostconf = "/usr/sbin/postconf"\n',
            "postfix.postconf: unknown key",
        )


class FetchTests(ConfigErrorAssertions):
    def test_fetch_settings(self) -> None:
        """fetch.timeout, ca_file ("" = system trust, None) and max_in_flight."""
        config = parse_config(
            "[fetch]\ntimeout = 90\nca_file = '/etc/ssl/ca.pem'\nmax_in_flight = 1\n"
        )
        self.assertEqual(config.fetch, FetchConfig(90.0, "/etc/ssl/ca.pem", 1))
        self.assertIsNone(parse_config("[fetch]\nca_file = ''\n").fetch.ca_file)

    def test_fetch_timeout_bounds(self) -> None:
        """fetch.timeout must be in (0, 90]: Postfix waits 100 s at most (G14)."""
        for bad in ("0", "-1", "90.5", "inf", "nan", "true", "'20'"):
            self.assertErrorStartsWith(
                f"[fetch]\ntimeout = {bad}\n",
                "fetch.timeout: expected seconds > 0 and <= 90, got ",
            )

    def test_max_in_flight(self) -> None:
        """max_in_flight must be an integer >= 1 (not a float or boolean)."""
        for bad, shown in (("0", "0"), ("1.5", "1.5"), ("true", "true")):
            self.assertConfigError(
                f"[fetch]\nmax_in_flight = {bad}\n",
                f"fetch.max_in_flight: expected an integer >= 1, got {shown}",
            )


class CacheTests(ConfigErrorAssertions):
    def test_cache_settings(self) -> None:
        """All cache keys map to unit-suffixed fields."""
        config = parse_config(
            "[cache]\nmax_entries = 10\nrecheck_interval = 600\n"
            "negative_ttl = 60\nfailure_backoff = 900\n"
        )
        self.assertEqual(config.cache, CacheConfig(10, 600.0, 60.0, 900.0))

    def test_max_entries_at_least_one(self) -> None:
        """cache.max_entries must be an integer >= 1."""
        self.assertConfigError(
            "[cache]\nmax_entries = 0\n",
            "cache.max_entries: expected an integer >= 1, got 0",
        )

    def test_failure_backoff_at_least_300(self) -> None:
        """cache.failure_backoff below 300 s is an error that cites the RFC's
        SHOULD (B14)."""
        self.assertConfigError(
            "[cache]\nfailure_backoff = 299.9\n",
            "cache.failure_backoff: expected seconds >= 300, got 299.9 (RFC 8461 "
            "§3.3: SHOULD wait at least 5 minutes after a failed fetch, B14)",
        )
        config = parse_config("[cache]\nfailure_backoff = 300\n")
        self.assertEqual(config.cache.failure_backoff_s, 300.0)

    def test_recheck_interval_bounds(self) -> None:
        """cache.recheck_interval must be positive and at most a day, so a
        changed TXT id is seen long before Postfix bounces mail (D11)."""
        self.assertConfigError(
            "[cache]\nrecheck_interval = 0\n",
            "cache.recheck_interval: expected seconds > 0 and <= 86400, got 0 "
            "(re-check the TXT id well before Postfix bounces mail, D11)",
        )
        self.assertErrorStartsWith(
            "[cache]\nrecheck_interval = 86401\n", "cache.recheck_interval: "
        )

    def test_negative_ttl_may_be_zero(self) -> None:
        """negative_ttl 0 (do not remember "no policy") is allowed; below is not."""
        self.assertEqual(
            parse_config("[cache]\nnegative_ttl = 0\n").cache.negative_ttl_s, 0.0
        )
        self.assertConfigError(
            "[cache]\nnegative_ttl = -1\n",
            "cache.negative_ttl: expected seconds >= 0, got -1",
        )


class ServerTests(ConfigErrorAssertions):
    def test_server_settings(self) -> None:
        """All server keys map to unit-suffixed fields."""
        config = parse_config(
            "[server]\nmax_connections = 4\nidle_timeout = 30\n"
            "lookup_budget = 90\nmax_request_bytes = 100000\n"
        )
        self.assertEqual(config.server, ServerConfig(4, 30.0, 90.0, 100_000))

    def test_lookup_budget_bounds(self) -> None:
        """server.lookup_budget must be in (0, 90] so the answer reaches
        Postfix before its 100 s limit (G14)."""
        self.assertConfigError(
            "[server]\nlookup_budget = 91\n",
            "server.lookup_budget: expected seconds > 0 and <= 90, got 91 "
            "(Postfix gives up on a reply after 100 s, G14)",
        )
        self.assertErrorStartsWith(
            "[server]\nlookup_budget = 0\n", "server.lookup_budget: "
        )

    def test_max_request_bytes_bounds(self) -> None:
        """server.max_request_bytes must be in 1..100000 (F9)."""
        for bad in ("0", "100001"):
            self.assertConfigError(
                f"[server]\nmax_request_bytes = {bad}\n",
                "server.max_request_bytes: expected an integer >= 1 and <= 100000, "
                f"got {bad}",
            )

    def test_idle_timeout_positive(self) -> None:
        """server.idle_timeout must be positive."""
        self.assertErrorStartsWith(
            "[server]\nidle_timeout = 0\n", "server.idle_timeout: expected seconds > 0"
        )

    def test_max_pending_per_connection(self) -> None:
        """server.max_pending_per_connection defaults to 16 and may be set
        within 1..10000 (F9, G6)."""
        self.assertEqual(ServerConfig().max_pending_per_connection, 16)
        config = parse_config("[server]\nmax_pending_per_connection = 1\n")
        self.assertEqual(config.server.max_pending_per_connection, 1)
        for bad in ("0", "10001", "1.5", "true"):
            self.assertConfigError(
                f"[server]\nmax_pending_per_connection = {bad}\n",
                "server.max_pending_per_connection: expected an integer >= 1 "
                f"and <= 10000, got {bad}",
            )

    def test_request_timeout(self) -> None:
        """server.request_timeout, how long a request begun may take to be
        complete, defaults to 5 s and must be in (0, 90] (F9, G14)."""
        self.assertEqual(ServerConfig().request_timeout_s, 5.0)
        config = parse_config("[server]\nrequest_timeout = 0.5\n")
        self.assertEqual(config.server.request_timeout_s, 0.5)
        for bad in ("0", "91"):
            self.assertErrorStartsWith(
                f"[server]\nrequest_timeout = {bad}\n",
                "server.request_timeout: expected seconds > 0 and <= 90",
            )


class LogTests(ConfigErrorAssertions):
    def test_log_settings(self) -> None:
        """log.level and log.format accept their documented words."""
        for level in ("debug", "info", "warn", "error"):
            for fmt in ("text", "json"):
                config = parse_config(f"[log]\nlevel = '{level}'\nformat = '{fmt}'\n")
                self.assertEqual(config.log, LogConfig(level, fmt))

    def test_bad_log_words(self) -> None:
        """Other level or format words are rejected with the choices listed."""
        self.assertConfigError(
            "[log]\nlevel = 'warning'\n",
            'log.level: expected "debug", "info", "warn" or "error", got "warning"',
        )
        self.assertConfigError(
            "[log]\nformat = 'syslog'\n",
            'log.format: expected "text" or "json", got "syslog"',
        )


class RedisTests(ConfigErrorAssertions):
    def test_fleet_key_file(self) -> None:
        """[redis] fleet_key_file names the fleet key file; unset or "" means
        values are not sealed (issue 9)."""
        self.assertIsNone(parse_config("").redis.fleet_key_file)
        self.assertIsNone(
            parse_config('[redis]\nfleet_key_file = ""\n').redis.fleet_key_file
        )
        config = parse_config(
            '[redis]\nfleet_key_file = "/etc/postfix-mtasts/fleet.key"\n'
        )
        self.assertEqual(config.redis.fleet_key_file, "/etc/postfix-mtasts/fleet.key")
        self.assertConfigError(
            "[redis]\nfleet_key_file = 1\n",
            "redis.fleet_key_file: expected a string, got 1",
        )


#: A float default for an integer field, as a slip of the pen would write it.
_FLOAT_DEFAULT: Any = 2.0


@attrs.frozen
class _FloatWrittenAsInt:
    wait_s: float = attrs.field(default=5, metadata=rule("wait", above=0, why="W"))


@attrs.frozen
class _IntWrittenAsFloat:
    count: int = attrs.field(default=_FLOAT_DEFAULT, metadata=rule(least=1))


def _read(cls: type[Any], text: str) -> Any:
    return section(cls, Table(tomllib.loads(text), "typed"))


class TypedDispatchTests(ConfigErrorAssertions):
    def test_float_field_with_int_default(self) -> None:
        """A float field reads seconds by its declared type even when its
        default is written as an integer: 2.5 and 3 are seconds, -1 is a
        ConfigError naming the key (not a TypeError from the integer reader)."""
        cls = _FloatWrittenAsInt
        self.assertEqual(_read(cls, ""), _FloatWrittenAsInt(5.0))
        self.assertEqual(_read(cls, "wait = 2.5"), _FloatWrittenAsInt(2.5))
        three = _read(cls, "wait = 3").wait_s
        self.assertEqual((three, type(three)), (3.0, float))
        error = self.assertRaises(ConfigError, _read, cls, "wait = -1")
        self.assertEqual(str(error), "typed.wait: expected seconds > 0, got -1 (W)")

    def test_int_field_with_float_default(self) -> None:
        """An int field reads an integer by its declared type even when its
        default is written as a float: 1.5 is a ConfigError, not seconds."""
        self.assertEqual(_read(_IntWrittenAsFloat, "count = 7").count, 7)
        error = self.assertRaises(ConfigError, _read, _IntWrittenAsFloat, "count = 1.5")
        self.assertEqual(str(error), "typed.count: expected an integer >= 1, got 1.5")

    def test_unsupported_type_is_a_bug(self) -> None:
        """A ruled field of a type no reader knows is a TypeError naming it,
        raised whatever the file says; an unruled field must be given."""

        @attrs.frozen
        class Odd:
            pairs: tuple[int, ...] = attrs.field(default=(), metadata=rule())

        @attrs.frozen
        class Given:
            pairs: tuple[int, ...] = ()

        error = self.assertRaises(TypeError, section, Odd, Table({}, "odd"))
        self.assertIn("Odd.pairs", str(error))
        self.assertRaises(TypeError, section, Given, Table({}, "given"))
        self.assertEqual(section(Given, Table({}, "given"), pairs=(1,)), Given((1,)))

    def test_optional_string_and_literal_by_type(self) -> None:
        """``str | None`` reads "" as None, and a ``Literal`` field takes its
        words from the type when its rule names no ``choices``."""

        @attrs.frozen
        class Typed:
            path: str | None = attrs.field(default=None, metadata=rule())
            level: Literal["low", "high"] = attrs.field(default="low", metadata=rule())

        self.assertEqual(_read(Typed, "path = ''"), Typed(None, "low"))
        self.assertEqual(_read(Typed, "path = 'p'\nlevel = 'high'"), Typed("p", "high"))
        error = self.assertRaises(ConfigError, _read, Typed, "level = 'mid'")
        self.assertEqual(str(error), 'typed.level: expected "low" or "high", got "mid"')
