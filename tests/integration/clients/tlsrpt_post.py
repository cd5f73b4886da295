"""POST TLS reports (RFC 8460 §5.3) to a receiver over HTTPS, as a sender
does, trusting only the CA file given; prints one JSON result line.

    tlsrpt_post.py reports URL CA REPORT.json COUNT CONCURRENCY
        COUNT gzip reports (REPORT.json with report-id "<id>-<n>"), POSTed
        with treq, CONCURRENCY at a time: {"codes": {...}, "seconds": s}
    tlsrpt_post.py random URL CA BYTES
        one gzip-typed POST of BYTES random bytes with treq: {"code": c}
        or {"error": "..."} when the receiver closed before answering
    tlsrpt_post.py declared HOST PORT CA SERVER_NAME BYTES
        only the headers of a POST declaring Content-Length BYTES, over a
        verified TLS socket; the status line read back: {"status": "..."}
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import ssl
import sys
import time
from collections import Counter
from typing import Any

import treq
from twisted.internet import defer, task
from twisted.internet.ssl import Certificate
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

GZIP = {b"Content-Type": [b"application/tlsrpt+gzip"]}


def _client(reactor: Any, ca: str) -> Any:
    with open(ca, "rb") as f:
        trust = Certificate.loadPEM(f.read())
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = 32
    agent = Agent(reactor, BrowserLikePolicyForHTTPS(trustRoot=trust), pool=pool)
    return treq.client.HTTPClient(agent), pool


async def _reports(
    reactor: Any, url: str, ca: str, path: str, count: int, width: int
) -> dict[str, Any]:
    client, pool = _client(reactor, ca)
    with open(path, "rb") as f:
        template = json.load(f)
    bodies = []
    for n in range(count):
        template["report-id"] = f"{template['report-id']}-{n}"
        bodies.append(gzip.compress(json.dumps(template).encode()))
        template["report-id"] = template["report-id"].rsplit("-", 1)[0]
    codes: Counter[int] = Counter()

    async def post(body: bytes) -> None:
        response = await client.post(url, data=body, headers=GZIP)
        await response.content()
        codes[response.code] += 1

    start = time.monotonic()
    sem = defer.DeferredSemaphore(width)

    def one(body: bytes) -> defer.Deferred[None]:
        return defer.Deferred.fromCoroutine(post(body))

    await defer.gatherResults([sem.run(one, b) for b in bodies])
    seconds = time.monotonic() - start
    await pool.closeCachedConnections()
    return {"codes": dict(codes), "seconds": seconds}


async def _random(reactor: Any, url: str, ca: str, size: int) -> dict[str, Any]:
    client, pool = _client(reactor, ca)
    try:
        response = await client.post(url, data=os.urandom(size), headers=GZIP)
        await response.content()
        result: dict[str, Any] = {"code": response.code}
    except Exception as e:  # the receiver closed while the body was sent
        result = {"error": f"{type(e).__name__}: {e}"}
    await pool.closeCachedConnections()
    return result


def _declared(host: str, port: int, ca: str, name: str, size: int) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=ca)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        tls.sendall(
            b"POST /tlsrpt HTTP/1.1\r\nHost: %s\r\n"
            b"Content-Type: application/tlsrpt+gzip\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
            % (name.encode(), size)
        )
        answer = b""
        while b"\r\n" not in answer:
            chunk = tls.recv(4096)
            if not chunk:
                break
            answer += chunk
    return {"status": answer.split(b"\r\n", 1)[0].decode()}


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "declared":
        host, port, ca, name, size = args
        print(json.dumps(_declared(host, int(port), ca, name, int(size))))
        return

    async def run(reactor: Any) -> None:
        if mode == "reports":
            url, ca, path, count, width = args
            result = await _reports(reactor, url, ca, path, int(count), int(width))
        else:
            url, ca, size = args
            result = await _random(reactor, url, ca, int(size))
        print(json.dumps(result), flush=True)

    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor)))


if __name__ == "__main__":
    main(sys.argv[1:])
