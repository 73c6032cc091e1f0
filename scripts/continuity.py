#!/usr/bin/env python3
"""The continuity scenario as a new user would run it, with real `rttp-chat
--plain` clients: three servers (groups a, b, c on 127.0.0.11-13), 8
senders on s1 in one room, 8 readers on s2 and s3; each sender types a
numbered line 10 times a second for 8 s, and s1 fails about 2.7 s in
(`kill` = kill -9, `stop` = SIGSTOP then SIGCONT 10 s later, `pause` =
SIGSTOP then SIGCONT 3.5 s later, while the senders still type: past the
peer timeout, within the clients' silence bound, `term` = a drain). Prints, per fault: lines acknowledged and given up, lost and
duplicated per reader (of the acknowledged lines), and the distinct orders
among the readers.

    python3 scripts/continuity.py [--bin target/debug] [kill stop pause term]

Bounded: every client and server is stopped within about a minute per fault.
Only loopback addresses are used.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = "target/debug"
ROOM = "#cont"
SENDERS, READERS, SECONDS, RATE = 8, 8, 8.0, 10


def ip(i):
    return f"127.0.0.{10 + i}"


def start_servers(tmp):
    secret = os.path.join(tmp, "secret")
    with open(secret, "w") as f:
        f.write("continuity-scenario-secret-0123456789\n")
    os.chmod(secret, 0o600)
    procs = []
    for i, group in ((1, "a"), (2, "b"), (3, "c")):
        args = [f"{BIN}/rttp-server", "--id", f"s{i}", "--listen", f"{ip(i)}:7000",
                "--peer-listen", f"{ip(i)}:7100", "--group", group, "--drain-window", "1",
                "--secret-file", secret]
        if i > 1:
            args += ["--seed", f"{ip(1)}:7100"]
        log = open(os.path.join(tmp, f"s{i}.log"), "w")
        procs.append(subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL))
    deadline = time.time() + 15
    while time.time() < deadline:
        if all(ups(i) == 3 for i in (1, 2, 3)):
            return procs
        time.sleep(0.2)
    raise SystemExit("the farm did not form a mesh within 15 s")


def ups(i):
    """How many servers server i's table shows UP."""
    try:
        with socket.create_connection((ip(i), 7000), timeout=1) as s:
            s.sendall(b"FARM\r\n")
            s.settimeout(1)
            data = b""
            while True:
                lines = data.split(b"\r\n")
                if lines[0].startswith(b"FARM_INFO ") and len(lines) > int(lines[0].split()[2]) + 1:
                    break
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.count(b" UP ")
    except OSError:
        return 0


class Chat:
    """One rttp-chat --plain, its stdout collected line by line."""

    def __init__(self, nick, server, group):
        self.lines = []
        self.p = subprocess.Popen(
            [f"{BIN}/rttp-chat", "--plain", "--connect", f"{ip(server)}:7000", "--strategy", "group",
             "--group", group, "--nick", nick],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def say(self, text):
        try:
            self.p.stdin.write(text + "\n")
            self.p.stdin.flush()
        except OSError:
            pass

    def quit(self):
        self.say("/quit")
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()


def scenario(fault):
    tmp = tempfile.mkdtemp(prefix="rttp-cont-")
    servers = start_servers(tmp)
    try:
        readers = [Chat(f"rdr{r}", 2 + r % 2, "bc"[r % 2]) for r in range(READERS)]
        senders = [Chat(f"snd{k}", 1, "a") for k in range(SENDERS)]
        for c in readers + senders:
            c.say(f"/join {ROOM}")
        time.sleep(2)
        start = time.time()
        n = int(SECONDS * RATE)
        faulted, woken = False, False
        for i in range(n):
            if not faulted and time.time() - start >= 2.7:
                faulted = True
                sig = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP, "pause": signal.SIGSTOP,
                       "term": signal.SIGTERM}[fault]
                servers[0].send_signal(sig)
            if fault == "pause" and not woken and time.time() - start >= 2.7 + 3.5:
                woken = True
                servers[0].send_signal(signal.SIGCONT)
            for k, s in enumerate(senders):
                s.say(f"snd{k}-{i:03}")
            time.sleep(max(0.0, start + (i + 1) / RATE - time.time()))
        if fault == "stop":
            time.sleep(10)
            servers[0].send_signal(signal.SIGCONT)
        # Wait for every line to be acknowledged or given up (30 s bound).
        deadline = time.time() + 40
        while time.time() < deadline:
            done = sum(1 for s in senders for l in s.lines if l.startswith(("acked ", "unacked ")))
            if done >= n * SENDERS:
                break
            time.sleep(0.5)
        time.sleep(3)
        acked, unacked = set(), 0
        for k, s in enumerate(senders):
            tags = [l.split()[2] for l in s.lines if l.startswith("pending ")]
            text = {t: f"snd{k}-{i:03}" for i, t in enumerate(tags)}
            for l in s.lines:
                if l.startswith("acked "):
                    acked.add(text.get(l.split()[2]))
                elif l.startswith("unacked "):
                    unacked += 1
        lost, dup, orders = [], [], set()
        for r in readers:
            got = [l.split(" ", 3)[3] for l in r.lines if l.startswith(f"msg {ROOM} ")]
            lost.append(sum(1 for t in acked if t not in got))
            dup.append(len(got) - len(set(got)))
            orders.add(tuple(t for t in got if t in acked))
        print(f"{fault}: {len(acked)} of {n * SENDERS} lines acknowledged, {unacked} given up; "
              f"lost per reader {lost}; duplicated per reader {dup}; {len(orders)} distinct orders")
        reasons = sorted({" ".join(l.split()[3:]) for s in senders for l in s.lines if l.startswith("unacked ")})
        if reasons:
            print(f"  given up because: {reasons[:3]}")
        with open(os.path.join(tmp, "snd0.out"), "w") as f:
            f.write("\n".join(senders[0].lines))
        print(f"  logs and snd0's output: {tmp}")
        for c in readers + senders:
            c.quit()
    finally:
        for p in servers:
            try:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


def main():
    global BIN
    args = sys.argv[1:]
    if "--bin" in args:
        i = args.index("--bin")
        BIN = args[i + 1]
        del args[i:i + 2]
    for fault in args or ["kill", "stop", "term"]:
        scenario(fault)


if __name__ == "__main__":
    main()
