#!/usr/bin/python3
# roam-peer.py: the two ends of test-roam.sh, on RndzClient
#
# SPDX-License-Identifier: MIT
#
#   roam-peer.py listen ID SERVER KEEPALIVE-MS LIFETIME-S
#       Registers ID with SERVER over UDP and over TCP (two clients, the
#       keepalive interval KEEPALIVE-MS) and echoes what peers send. Prints
#         "monitor TYPE"          the GNetworkMonitor that GIO gave us
#         "registered udp|tcp PORT"
#         "changed MS"            the monitor's network-changed (epoch ms)
#         "state udp|tcp NAME MS" the client's state changed (epoch ms)
#       and the library's messages on stderr, each after its epoch ms.
#       Exits after LIFETIME-S seconds, or on SIGTERM.
#
#   roam-peer.py probe PREFIX SERVER PEER
#       Reads commands on standard input, one a line:
#         "go T0 LIMIT-MS"   tries to reach PEER over UDP and over TCP
#                            until it answers: every STAGGER_MS a new
#                            attempt (a new client, id PREFIX-u-N or
#                            PREFIX-t-N, timeout ATTEMPT_MS) while no
#                            earlier one has got the echo back; prints
#                              "reached udp|tcp MS PATH"  MS since T0
#                                                         (epoch ms)
#                              "unreached udp|tcp MS"     not by LIMIT-MS
#                            then "done".
#         "quit"
#       An attempt counts once its message has come back: the path
#       works both ways. Attempts overlap, so the time is not rounded up
#       to an attempt's timeout: a peer that comes back is reached by
#       the next attempt, STAGGER_MS later at most.
#
# Needs PyGObject and the Rndz typelib (GI_TYPELIB_PATH, LD_LIBRARY_PATH).
# Lines are flushed at once: the script reads them while we run.

import os
import signal
import socket
import sys
import threading
import time

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Rndz', '1.0')

from gi.repository import Gio, GLib, Rndz  # noqa: E402

STAGGER_MS = 100
ATTEMPT_MS = 2000
RESEND_MS = 200


def say(*words):
    print(*words, flush=True)


def now_ms():
    return int(time.time() * 1000)


def pysocket(gsocket):
    """A Python socket on a duplicate of @gsocket's descriptor."""
    s = socket.socket(fileno=os.dup(gsocket.get_fd()))
    s.setblocking(False)
    return s


# Listening

class Listener:
    def __init__(self, peer_id, server, keepalive_ms):
        self.peer_id = peer_id
        self.server = server
        self.keepalive_ms = keepalive_ms
        self.keep = []      # what must live as long as we do

    def client(self):
        client = Rndz.Client.new(self.peer_id, [self.server])
        client.set_keepalive_interval(self.keepalive_ms)
        client.set_timeout(10000)
        client.set_relay(False)
        return client

    def watch_state(self, client, name):
        client.connect('notify::state', lambda c, _p: say(
            'state', name, c.get_state().value_nick, now_ms()))

    def echo(self, s, stream):
        def readable(_fd, _cond):
            try:
                data = s.recv(65536)
            except BlockingIOError:
                return GLib.SOURCE_CONTINUE
            except OSError:
                return GLib.SOURCE_REMOVE
            if not data:
                return GLib.SOURCE_REMOVE
            try:
                if stream:
                    s.setblocking(True)
                    s.sendall(data)
                    s.setblocking(False)
                else:
                    s.send(data)
            except OSError:
                pass
            return GLib.SOURCE_CONTINUE

        GLib.io_add_watch(s.fileno(), GLib.PRIORITY_DEFAULT,
                          GLib.IOCondition.IN | GLib.IOCondition.HUP, readable)

    def start_udp(self):
        client = self.client()
        self.watch_state(client, 'udp')

        def peer_socket(_client, _peer, gsocket):
            self.keep.append(gsocket)
            s = pysocket(gsocket)
            self.keep.append(s)
            self.echo(s, False)

        def listened(c, result):
            gsocket = c.listen_udp_finish(result)
            self.keep.append(gsocket)
            # What comes to the listening socket came through no
            # rendezvous: read and dropped
            s = pysocket(gsocket)
            self.keep.append(s)
            GLib.io_add_watch(s.fileno(), GLib.PRIORITY_DEFAULT, GLib.IOCondition.IN,
                              lambda *_a: (s.recv(65536), GLib.SOURCE_CONTINUE)[1])
            say('registered udp', c.get_local_port())

        client.connect('peer-socket', peer_socket)
        client.listen_udp_async(None, listened)
        self.keep.append(client)

    def start_tcp(self):
        client = self.client()
        self.watch_state(client, 'tcp')

        def accepted(c, result):
            try:
                connection, _peer = c.accept_finish(result)
            except GLib.Error:
                GLib.timeout_add(200, lambda: c.accept_async(None, accepted))
                return
            self.keep.append(connection)
            s = pysocket(connection.get_socket())
            self.keep.append(s)
            self.echo(s, True)
            c.accept_async(None, accepted)

        def listened(c, result):
            c.listen_tcp_finish(result)
            say('registered tcp', c.get_local_port())
            c.accept_async(None, accepted)

        client.listen_tcp_async(None, listened)
        self.keep.append(client)


def log_to_stderr(domain, _level, message, _data):
    sys.stderr.write('%d %s: %s\n' % (now_ms(), domain, message))
    sys.stderr.flush()


def listen(peer_id, server, keepalive_ms, lifetime_s):
    loop = GLib.MainLoop()
    # The library's debug messages, time-stamped, for the logs
    GLib.log_set_handler('Rndz', GLib.LogLevelFlags.LEVEL_MASK, log_to_stderr, None)
    monitor = Gio.NetworkMonitor.get_default()
    say('monitor', monitor.__gtype__.name)
    monitor.connect('network-changed', lambda *_a: say('changed', now_ms()))
    listener = Listener(peer_id, server, int(keepalive_ms))
    listener.start_udp()
    listener.start_tcp()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.timeout_add_seconds(int(lifetime_s), loop.quit)
    loop.run()


# Probing

class Transport:
    """The attempts to reach the peer over one transport, for one "go" """

    def __init__(self, prober, name, prefix, t0, limit_ms):
        self.prober = prober
        self.name = name
        self.prefix = prefix
        self.t0 = t0
        self.limit_ms = limit_ms
        self.cancellable = Gio.Cancellable()
        self.finished = False
        self.n = 0
        self.clients = []
        self.keep = []
        self.timer = GLib.timeout_add(STAGGER_MS, self.attempt)
        self.attempt()

    def finish(self, words):
        if self.finished:
            return
        self.finished = True
        say(*words)
        GLib.source_remove(self.timer)
        self.cancellable.cancel()
        for c in self.clients:
            c.stop()
        # Let cancelled operations return before the clients go
        GLib.timeout_add(ATTEMPT_MS + 500, lambda: self.keep.clear())
        self.prober.transport_done()

    def attempt(self):
        if self.finished:
            return GLib.SOURCE_REMOVE
        if now_ms() - self.t0 >= self.limit_ms:
            self.finish(['unreached', self.name, now_ms() - self.t0])
            return GLib.SOURCE_REMOVE
        self.n += 1
        client = Rndz.Client.new('%s-%s-%d' % (self.prefix, self.name[0], self.n),
                                 [self.prober.server])
        client.set_timeout(ATTEMPT_MS)
        client.set_relay(False)
        self.clients.append(client)
        self.keep.append(client)
        if self.name == 'udp':
            client.connect_udp_async(self.prober.peer, self.cancellable, self.connected_udp)
        else:
            client.connect_tcp_async(self.prober.peer, self.cancellable, self.connected_tcp)
        return GLib.SOURCE_CONTINUE

    def connected_udp(self, client, result):
        try:
            gsocket = client.connect_udp_finish(result)
        except GLib.Error:
            return
        if self.finished:
            return
        self.keep.append(gsocket)
        self.check_echo(pysocket(gsocket), Rndz.socket_get_path(gsocket), True)

    def connected_tcp(self, client, result):
        try:
            connection = client.connect_tcp_finish(result)
        except GLib.Error:
            return
        if self.finished:
            return
        self.keep.append(connection)
        path = Rndz.socket_get_path(connection.get_socket())
        self.check_echo(pysocket(connection.get_socket()), path, False)

    def check_echo(self, s, path, resend):
        message = ('%s-%d-%d' % (self.name, self.n, now_ms())).encode()
        deadline = now_ms() + ATTEMPT_MS
        self.keep.append(s)

        def send():
            if self.finished or now_ms() > deadline:
                return GLib.SOURCE_REMOVE
            try:
                s.send(message)
            except OSError:
                pass
            return GLib.SOURCE_CONTINUE if resend else GLib.SOURCE_REMOVE

        def readable(_fd, _cond):
            try:
                data = s.recv(65536)
            except BlockingIOError:
                return GLib.SOURCE_CONTINUE
            except OSError:
                return GLib.SOURCE_REMOVE
            if data == message:
                self.finish(['reached', self.name, now_ms() - self.t0,
                             path.value_nick])
                return GLib.SOURCE_REMOVE
            return GLib.SOURCE_CONTINUE if data else GLib.SOURCE_REMOVE

        send()
        if resend:
            GLib.timeout_add(RESEND_MS, send)
        GLib.io_add_watch(s.fileno(), GLib.PRIORITY_DEFAULT,
                          GLib.IOCondition.IN | GLib.IOCondition.HUP, readable)


class Prober:
    def __init__(self, prefix, server, peer):
        self.prefix = prefix
        self.server = server
        self.peer = peer
        self.pending = 0
        self.round = 0

    def go(self, t0, limit_ms):
        self.round += 1
        self.pending = 2
        # Ids of their own in every round, so that nothing the server
        # keeps of an earlier round's requesters is in the way
        prefix = '%s%d' % (self.prefix, self.round)
        Transport(self, 'udp', prefix, t0, limit_ms)
        Transport(self, 'tcp', prefix, t0, limit_ms)

    def transport_done(self):
        self.pending -= 1
        if self.pending == 0:
            say('done')


def probe(prefix, server, peer):
    loop = GLib.MainLoop()
    GLib.log_set_handler('Rndz', GLib.LogLevelFlags.LEVEL_MASK, log_to_stderr, None)
    prober = Prober(prefix, server, peer)

    def command(line):
        words = line.split()
        if not words or words[0] == 'quit':
            loop.quit()
        elif words[0] == 'go':
            prober.go(int(words[1]), int(words[2]))
        return GLib.SOURCE_REMOVE

    def read_commands():
        for line in sys.stdin:
            GLib.idle_add(command, line)
        GLib.idle_add(command, '')

    threading.Thread(target=read_commands, daemon=True).start()
    loop.run()


def main(argv):
    if len(argv) == 6 and argv[1] == 'listen':
        listen(*argv[2:])
    elif len(argv) == 5 and argv[1] == 'probe':
        probe(*argv[2:])
    else:
        sys.stderr.write('usage: roam-peer.py listen ID SERVER KEEPALIVE-MS LIFETIME-S\n'
                         '       roam-peer.py probe PREFIX SERVER PEER\n')
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
