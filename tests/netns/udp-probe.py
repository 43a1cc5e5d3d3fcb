#!/usr/bin/python3
# udp-probe.py: small UDP tools for test-nat.sh, run inside the namespaces
#
# SPDX-License-Identifier: MIT
#
#   udp-probe.py listen  PORT SECONDS [HOST SPORT]
#       Binds PORT (all addresses, IPv4 and IPv6), optionally sends
#       "solicit" to HOST:SPORT from it (which opens a mapping in the NAT
#       and state in the firewalls), then prints "got TEXT from ADDRESS"
#       for every datagram that arrives within SECONDS.
#   udp-probe.py respond PORT SECONDS
#       Waits up to SECONDS for one datagram on PORT, prints
#       "observed ADDRESS PORT" (the sender as seen from here), answers
#       "solicited" from PORT, and sends "other-port" to the same sender
#       from another port, which its firewall must drop.
#   udp-probe.py send HOST PORT TEXT
#       Sends one datagram.
#
# Every line is flushed at once: the script reads them while we run.

import socket
import sys
import time


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def any_socket(port):
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    return sock


def plain(address):
    host = address[0]
    if host.startswith("::ffff:"):
        host = host[len("::ffff:"):]
    return host, address[1]


def listen(port, seconds, host=None, sport=None):
    sock = any_socket(port)
    if host is not None:
        target = host if ":" in host else "::ffff:" + host
        sock.sendto(b"solicit", (target, sport))
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, sender = sock.recvfrom(2048)
        except socket.timeout:
            break
        except OSError:
            # an ICMP error for our solicit: not what we listen for
            continue
        print("got %s from %s port %d" % ((data.decode(errors="replace"),) + plain(sender)),
              flush=True)


def respond(port, seconds):
    sock = any_socket(port)
    sock.settimeout(seconds)
    print("ready", flush=True)
    try:
        _, sender = sock.recvfrom(2048)
    except socket.timeout:
        print("nothing", flush=True)
        return 1
    print("observed %s %d" % plain(sender), flush=True)
    sock.sendto(b"solicited", sender)
    other = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    other.sendto(b"other-port", sender)
    return 0


def send(host, port, text):
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    sock.sendto(text.encode(), (host, port))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "listen":
        extra = (argv[3], int(argv[4])) if len(argv) == 5 else ()
        listen(int(argv[1]), float(argv[2]), *extra)
        return 0
    if len(argv) == 3 and argv[0] == "respond":
        return respond(int(argv[1]), float(argv[2]))
    if len(argv) == 4 and argv[0] == "send":
        return send(argv[1], int(argv[2]), argv[3])
    print("usage: udp-probe.py listen PORT SECONDS [HOST SPORT] | respond PORT SECONDS"
          " | send HOST PORT TEXT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
