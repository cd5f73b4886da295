"""Ask for many domains at once, each on its own connection, and time it.

Usage: socketmap_parallel.py PORT DOMAIN [DOMAIN...]
All requests go out together (one thread and one connection per domain, as
many Postfix smtp processes would); prints one JSON object mapping each
domain to [reply, seconds] ("error: ..." for a failed connection).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

TIMEOUT_S = 60.0


def ask(port: int, domain: str, start: threading.Event) -> tuple[str, float]:
    request = f"postfix {domain}".encode()
    try:
        with socket.create_connection(("127.0.0.1", port), TIMEOUT_S) as sock:
            start.wait()
            began = time.monotonic()
            sock.sendall(b"%d:%s," % (len(request), request))
            data = b""
            while not data.endswith(b","):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
            return data.partition(b":")[2][:-1].decode(), time.monotonic() - began
    except OSError as e:
        return f"error: {e}", 0.0


def main() -> None:
    port, domains = int(sys.argv[1]), sys.argv[2:]
    start = threading.Event()
    results: dict[str, tuple[str, float]] = {}

    def run(domain: str) -> None:
        results[domain] = ask(port, domain, start)

    threads = [threading.Thread(target=run, args=(d,)) for d in domains]
    for thread in threads:
        thread.start()
    start.set()
    for thread in threads:
        thread.join(TIMEOUT_S + 5)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
