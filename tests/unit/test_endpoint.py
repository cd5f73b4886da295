"""Tests for postfix_mtasts.core.endpoint: listener endpoint strings checked
at config load as Twisted will read them (issue 11: `tcp:notaport`, an
`interfac=` typo and an unescaped IPv6 address were tracebacks at start;
F7 listeners)."""

from __future__ import annotations

from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.endpoint import (
    MAX_UNIX_PATH_BYTES,
    EndpointError,
    parse_endpoint,
)

GOOD = [
    ("tcp:8461:interface=127.0.0.1", {"port": "8461", "interface": "127.0.0.1"}),
    ("tcp:port=8461:interface=127.0.0.2", {"port": "8461"}),
    ("tcp:interface=127.0.0.1:port=8461", {"interface": "127.0.0.1"}),
    ("tcp:8461:127.0.0.1:100", {"backlog": "100"}),
    ("tcp:8461:", {"interface": ""}),
    ("tcp:8461:interface=localhost", {"interface": "localhost"}),
    (r"tcp:8461:interface=\:\:1", {"interface": "::1"}),
    (r"tcp6:8461:interface=\:\:1", {"interface": "::1", "backlog": "50"}),
    ("tcp6:8461", {"interface": "::"}),
    ("unix:/run/x.sock:mode=660", {"address": "/run/x.sock", "mode": "660"}),
    ("unix:/run/x.sock:mode=0660:lockfile=0", {"lockfile": "0"}),
    ("systemd:domain=INET:index=0", {"domain": "INET", "index": "0"}),
    ("systemd:domain=UNIX:name=mtasts", {"name": "mtasts"}),
]

BAD = [
    ("tcp:notaport", "port: expected a number from 1 to 65535, got 'notaport'"),
    ("tcp:99999", "port: expected a number from 1 to 65535, got '99999'"),
    ("tcp:0", "port: expected a number from 1 to 65535"),
    ("tcp:", "port: expected a number"),
    ("tcp:8461:interfac=127.0.0.1", "tcp: unknown argument 'interfac'"),
    ("tcp:8461:interface=::1", "tcp: interface given twice; escape each colon"),
    ("tcp:8461:1.2.3.4:5:6", "tcp: takes at most 3 arguments"),
    ("tcp:8461:port=1", "tcp: port given twice"),
    ("tcp:8461:interface=1.2.3", "interface: expected an IP address or a host"),
    ("tcp:8461:interface=a_b", "interface: expected an IP address"),
    ("tcp:8461:backlog=many", "backlog: expected a number from 1 to 65535"),
    ("tcp6:8461:interface=127.0.0.1", "interface: expected an IPv6 address"),
    ("unix:a.sock", "unix: expected an absolute socket path, got 'a.sock'"),
    ("unix:/" + "x" * MAX_UNIX_PATH_BYTES, "unix: the socket path is longer"),
    ("unix:/x:mode=999", "mode: expected octal permissions such as 660"),
    ("unix:/x:mode=7777", "mode: expected octal permissions"),
    ("unix:/x:lockfile=yes", "lockfile: expected 0 or 1"),
    ("unix:/x:owner=postfix", "unix: unknown argument 'owner'"),
    ("systemd:domain=INET", "systemd: give exactly one of index=N and name=NAME"),
    ("systemd:domain=INET:index=0:name=x", "systemd: give exactly one"),
    ("systemd:domain=PACKET:index=0", "domain: expected INET, INET6 or UNIX"),
    ("systemd:domain=INET:index=first", "index: expected a number"),
    ("systemd:index=0", "systemd: missing domain"),
    ("udp:53", "expected a string starting with tcp:"),
]


class EndpointTests(SynchronousTestCase):
    def test_good_endpoints(self) -> None:
        """Every form Twisted accepts for our four kinds is accepted, with
        the parameters Twisted will see (escapes removed, defaults filled);
        Twisted's own parser builds an endpoint from each (F7)."""
        for text, expected in GOOD:
            endpoint = parse_endpoint(text)
            for key, value in expected.items():
                self.assertEqual(endpoint.params[key], value, text)
            if endpoint.kind != "systemd":  # needs LISTEN_FDS to build
                serverFromString(MemoryReactor(), text)

    def test_bad_endpoints(self) -> None:
        """Each unusable endpoint is an EndpointError naming the argument at
        fault, never an error from inside Twisted at start (issue 11)."""
        for text, message in BAD:
            with self.assertRaises(EndpointError, msg=text) as caught:
                parse_endpoint(text)
            self.assertIn(message, str(caught.exception), text)
