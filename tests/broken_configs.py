"""Broken configurations, each with the exit status and the words its one
error line must carry (issue 11: every start-up failure is one clean line).

Shared by the unit tests (the checks run in-process) and the integration
test that starts ``postfix-mtasts serve`` on each of them.
"""

from __future__ import annotations

from attrs import frozen

__all__ = ["BASE", "CASES", "BrokenConfig", "render"]

#: Added to every case: a listener of its own and nothing on disk.
BASE = """
[[listener]]
endpoint = "tcp:{port}:interface=127.0.0.1"
"""
_NO_DISK = {
    "[store]": '\n[store]\npath = ""\n',
    "[control]": '\n[control]\nsocket = ""\n',
}


@frozen
class BrokenConfig:
    """``toml`` before :data:`BASE`; ``{work}`` is a scratch directory,
    ``{busy}`` a free loopback port (other than BASE's).  ``status``: 2 for
    a configuration error, 1 for a runtime one.  ``names``: what the line
    must name (a key path, an endpoint, a file)."""

    name: str
    toml: str
    status: int
    names: tuple[str, ...]


def render(case: BrokenConfig, *, port: int, work: str, busy: int) -> str:
    """The whole file for ``case``."""
    # The case first: its top-level keys must come before any table.
    text = case.toml.replace("{work}", work).replace("{busy}", str(busy))
    text += BASE.format(port=port)
    for header, default in _NO_DISK.items():
        if header not in text:
            text += default
    return text


def _listener(endpoint: str, extra: str = "") -> str:
    return f'\n[[listener]]\nendpoint = "{endpoint}"\n{extra}'


_C = BrokenConfig
CASES: tuple[BrokenConfig, ...] = (
    # The file itself.
    _C("toml syntax", "[fetch\n", 2, ("invalid TOML",)),
    _C("unknown top-level key", "colour = 1\n", 2, ("colour",)),
    _C("typo in a key", "[fetch]\ntimout = 5\n", 2, ("fetch.timout",)),
    _C("typo in a section", "[fecth]\ntimeout = 5\n", 2, ("fecth",)),
    _C("section not a table", "fetch = 5\n", 2, ("fetch",)),
    # Types and ranges.
    _C("string for seconds", '[fetch]\ntimeout = "5"\n', 2, ("fetch.timeout",)),
    _C("zero timeout", "[fetch]\ntimeout = 0\n", 2, ("fetch.timeout",)),
    _C("timeout over G14", "[server]\nlookup_budget = 500\n", 2, ("lookup_budget",)),
    _C("zero max_entries", "[cache]\nmax_entries = 0\n", 2, ("cache.max_entries",)),
    _C("float for integer", "[cache]\nmax_entries = 1.5\n", 2, ("max_entries",)),
    _C("backoff under B14", "[cache]\nfailure_backoff = 10\n", 2, ("failure_backoff",)),
    _C("huge request size", "[server]\nmax_request_bytes = 1e9\n", 2, ("max_request",)),
    _C("negative interval", "[refresh]\ninterval = -1\n", 2, ("refresh.interval",)),
    _C("string for boolean", '[refresh]\nenabled = "yes"\n', 2, ("refresh.enabled",)),
    _C("log level", '[log]\nlevel = "verbose"\n', 2, ("log.level",)),
    _C("log format", '[log]\nformat = "xml"\n', 2, ("log.format",)),
    # Maps.
    _C("empty maps", "[maps]\n", 2, ("maps",)),
    _C("map name", '[maps."a b"]\n', 2, ("maps.",)),
    _C("dns_failure word", '[maps.p]\ndns_failure = "defer"\n', 2, ("dns_failure",)),
    _C("dane word", '[maps.p]\ndane = "yes"\n', 2, ("maps.p.dane",)),
    # DNS and Postfix.
    _C("nameserver", '[dns]\nnameservers = ["dns.example"]\n', 2, ("nameservers",)),
    _C("dnssec probe", '[dns]\ndnssec_probe = "ns"\n', 2, ("dnssec_probe",)),
    _C(
        "postconf directory relative",
        '[postfix]\nconfig_directory = "etc/postfix"\n',
        2,
        ("config_directory",),
    ),
    _C(
        "postconf directory missing",
        '[postfix]\nconfig_directory = "{work}/no-postfix"\n',
        2,
        ("config_directory", "no-postfix"),
    ),
    # HTTPS.
    _C("ca_file missing", '[fetch]\nca_file = "{work}/no-ca.pem"\n', 2, ("ca_file",)),
    _C("ca_file a directory", '[fetch]\nca_file = "{work}"\n', 2, ("ca_file",)),
    _C("ca_file not PEM", '[fetch]\nca_file = "/etc/hostname"\n', 2, ("ca_file",)),
    # Listeners.
    _C("endpoint kind", _listener("udp:8461"), 2, ("listener[0].endpoint",)),
    _C("tcp:notaport", _listener("tcp:notaport"), 2, ("listener[0]", "notaport")),
    _C("port out of range", _listener("tcp:99999"), 2, ("listener[0]", "99999")),
    _C(
        "interface typo",
        _listener("tcp:8461:interfac=127.0.0.1"),
        2,
        ("listener[0]", "interfac"),
    ),
    _C(
        "unescaped IPv6 interface",
        _listener("tcp:8461:interface=::1"),
        2,
        ("listener[0]", "interface"),
    ),
    _C(
        "interface not an address",
        _listener("tcp:8461:interface=127.0.0.1.5"),
        2,
        ("listener[0].endpoint", "127.0.0.1.5"),
    ),
    _C("backlog word", _listener("tcp:8461:backlog=many"), 2, ("backlog",)),
    _C("unix mode", _listener("unix:{work}/a.sock:mode=999"), 2, ("mode",)),
    _C("unix relative", _listener("unix:a.sock"), 2, ("listener[0]", "a.sock")),
    _C(
        "unix socket directory missing",
        _listener("unix:{work}/no-dir/a.sock"),
        2,
        ("listener[0]", "no-dir"),
    ),
    _C(
        "systemd without fds", _listener("systemd:domain=INET:index=0"), 2, ("systemd",)
    ),
    _C(
        "protocol word",
        _listener("tcp:8461", 'protocol = "sockmap"\n'),
        2,
        ("protocol",),
    ),
    _C(
        "unknown socket group",
        _listener("unix:{work}/g.sock", 'group = "no-such-group"\n'),
        2,
        ("listener[0].group", "no-such-group"),
    ),
    _C(
        "unknown socket owner",
        _listener("unix:{work}/o.sock", 'owner = "no-such-user"\n'),
        2,
        ("listener[0].owner", "no-such-user"),
    ),
    # Two spellings of one address: both pass the load, the second bind fails.
    _C(
        "port in use",
        _listener("tcp:{busy}:interface=127.0.0.1")
        + _listener("tcp:{busy}:interface=127.0.0.1:backlog=5"),
        1,
        ("cannot listen on 127.0.0.1:{busy}", "Address already in use"),
    ),
    # Metrics: the listeners' grammar and start-up checks.
    _C(
        "metrics interface typo",
        '[metrics]\nendpoint = "tcp:9461:interfac=127.0.0.1"\n',
        2,
        ("metrics.endpoint", "interfac"),
    ),
    _C(
        "metrics socket directory missing",
        '[metrics]\nendpoint = "unix:{work}/no-dir/m.sock"\n',
        2,
        ("metrics.endpoint", "no-dir"),
    ),
    # Stores.
    _C("redis port word", '[redis]\nurl = "redis://:notaport"\n', 2, ("redis.url",)),
    _C("redis port range", '[redis]\nurl = "redis://host:99999"\n', 2, ("redis.url",)),
    _C("rediss one slash", '[redis]\nurl = "rediss:/x"\n', 2, ("redis.url",)),
    _C("http url", '[redis]\nurl = "http://x"\n', 2, ("redis.url",)),
    _C("redis db word", '[redis]\nurl = "redis://localhost/x"\n', 2, ("redis.url",)),
    _C("redis unix no path", '[redis]\nurl = "unix://"\n', 2, ("redis.url",)),
    _C(
        "fleet key missing",
        '[redis]\nurl = "redis://127.0.0.1:1"\nfleet_key_file = "{work}/no-key"\n',
        2,
        ("fleet_key_file",),
    ),
    _C(
        "store directory missing",
        '[store]\npath = "{work}/no-dir/p.sqlite3"\n',
        2,
        ("store.path", "no-dir"),
    ),
)
