"""Send one socketmap request on each of N new connections at once.

Usage: socketmap_burst.py PORT[,PORT...] N REQUEST
Connections are spread round-robin over the ports.  Prints one JSON line:
the replies (payloads) in connection order.  Runs inside $P-mta.
"""

from __future__ import annotations

import json
import socket
import sys
import threading


def main() -> None:
    ports = [int(p) for p in sys.argv[1].split(",")]
    count, request = int(sys.argv[2]), sys.argv[3].encode()
    frame = b"%d:%s," % (len(request), request)
    socks = [
        socket.create_connection(("127.0.0.1", ports[i % len(ports)]), timeout=60)
        for i in range(count)
    ]
    replies: list[str] = [""] * count
    start = threading.Barrier(count)

    def ask(i: int) -> None:
        start.wait()
        socks[i].sendall(frame)
        data = b""
        while not data.endswith(b","):
            chunk = socks[i].recv(65536)
            if not chunk:
                break
            data += chunk
        replies[i] = data.partition(b":")[2][:-1].decode()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(replies))


if __name__ == "__main__":
    main()
