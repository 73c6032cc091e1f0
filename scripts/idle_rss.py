#!/usr/bin/env python3
"""Server RSS per idle session: open N sessions (HELLO + one JOIN) to a
running rttp-server and read its VmRSS from /proc before and after.

    ulimit -n 65536; rttp-server --id s1 --capacity 20000 &
    python3 scripts/idle_rss.py --pid $! --sessions 10000

Talks only to the address given (default 127.0.0.1:7000). Bounded: it opens
N connections, waits, prints, closes them and exits.
"""
import argparse
import asyncio
import resource
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def session(host, port, i, rooms):
    r, w = await asyncio.open_connection(host, port)
    w.write(f"HELLO 1 idle{i}\r\nJOIN #idle{i % rooms}\r\n".encode())
    await w.drain()
    await r.readuntil(b"JOINED")
    return r, w


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pid", type=int, required=True, help="rttp-server process id")
    p.add_argument("--addr", default="127.0.0.1:7000")
    p.add_argument("--sessions", type=int, default=10000)
    p.add_argument("--rooms", type=int, default=100, help="sessions are spread over this many rooms")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.sessions + 1024), hard))
    host, port = a.addr.rsplit(":", 1)
    before = rss_kib(a.pid)
    conns = []
    for start in range(0, a.sessions, 500):
        batch = range(start, min(start + 500, a.sessions))
        conns += await asyncio.gather(*(session(host, int(port), i, a.rooms) for i in batch))
    time.sleep(2)
    after = rss_kib(a.pid)
    per = (after - before) * 1024 / a.sessions
    print(f"sessions={a.sessions} rss_before={before} KiB rss_after={after} KiB per_session={per:.0f} bytes")
    for _, w in conns:
        w.close()


asyncio.run(main())
