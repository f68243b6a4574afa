#!/usr/bin/env python3
"""Memory per entry of a real uvs daemon, measured as its RSS (VmRSS) before and after
N entries of one kind, on loopback only (README, "Memory per entry").

    benches/entry_rss.py KIND N [UVS_BIN_DIR]

KIND:
  closed     N TCP connections opened and closed through uvs: N TIME_WAIT entries.
  open       N TCP connections held open through uvs (N <= about a third of the
             open-files limit: each costs uvs two descriptors and this script two).
  udp        N UDP flows (N client sockets, one datagram each, answered).
  templates  N TCP connections from N client addresses (127.1.0.0/16 and up) to a
             persistent service (-p 3600), closed: N templates and N closed entries;
             the figure printed subtracts a `closed` run's bytes per entry, given as
             CLOSED_BYTES in the environment (else it is templates + closed entries).

Prints the RSS delta, the entries `uvsadm -L -c -n` lists, and bytes per entry.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tcp_backend(port, hold):
    """Accepts forever; closes at once unless `hold` (then keeps the socket)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4096)
    kept = []

    def run():
        while True:
            c, _ = srv.accept()
            if hold:
                kept.append(c)
            else:
                c.close()

    threading.Thread(target=run, daemon=True).start()
    return kept


def udp_backend(port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", port))

    def run():
        while True:
            data, peer = srv.recvfrom(2048)
            srv.sendto(data, peer)

    threading.Thread(target=run, daemon=True).start()


def main():
    kind, n = sys.argv[1], int(sys.argv[2])
    bindir = sys.argv[3] if len(sys.argv) > 3 else "target/release"
    uvs, uvsadm = os.path.join(bindir, "uvs"), os.path.join(bindir, "uvsadm")
    sock = os.path.join(tempfile.mkdtemp(), "uvs.sock")
    daemon = subprocess.Popen(
        [uvs, "run", "--socket", sock, "--mode", "userspace", "--metrics", "off",
         "--threads", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, UVS_SOCKET=sock)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        proto = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
        vport, rport = free_port(proto), free_port(proto)
        flag = "-u" if kind == "udp" else "-t"
        vip = f"127.0.0.1:{vport}"
        add = [uvsadm, "-A", flag, vip, "-s", "rr"]
        if kind == "templates":
            add += ["-p", "3600"]
        subprocess.run(add, env=env, check=True)
        subprocess.run([uvsadm, "-a", flag, vip, "-r", f"127.0.0.1:{rport}", "-m"],
                       env=env, check=True)
        if kind == "udp":
            udp_backend(rport)
        else:
            tcp_backend(rport, hold=(kind == "open"))
        time.sleep(0.5)
        before = rss_kb(daemon.pid)
        held = []
        for i in range(n):
            if kind == "udp":
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.settimeout(5)
                s.sendto(b"x", ("127.0.0.1", vport))
                s.recvfrom(16)
                held.append(s)
                continue
            s = socket.socket()
            if kind == "templates":
                a = i // 254
                s.bind((f"127.{1 + a // 256}.{a % 256}.{i % 254 + 1}", 0))
            s.connect(("127.0.0.1", vport))
            if kind == "open":
                held.append(s)
            else:
                s.recv(1)  # the backend's close, through uvs
                s.close()
        time.sleep(1.5)
        after = rss_kb(daemon.pid)
        listed = subprocess.run([uvsadm, "-L", "-c", "-n"], env=env, check=True,
                                capture_output=True, text=True).stdout
        entries = sum(1 for line in listed.splitlines()
                      if line.split()[:1] and line.split()[0] in ("TCP", "UDP", "IP"))
        delta = (after - before) * 1024
        per = delta / n
        if kind == "templates" and "CLOSED_BYTES" in os.environ:
            per -= float(os.environ["CLOSED_BYTES"])
        print(f"kind={kind} n={n} rss_before_kb={before} rss_after_kb={after} "
              f"listed={entries} bytes_per_entry={per:.0f}")
        for s in held:
            s.close()
    finally:
        daemon.terminate()
        daemon.wait()


if __name__ == "__main__":
    main()
