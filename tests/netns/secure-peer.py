#!/usr/bin/python3
# secure-peer.py: a secure peer (TLS or DTLS) for test-nat-secure.sh
#
# SPDX-License-Identifier: MIT
#
#   secure-peer.py listen ID SERVER udp|tcp [KEEPALIVE-MS]
#       Listens through SERVER with a fresh identity and prints
#         "fingerprint FP"         its fingerprint, then
#         "ready"                  once registered
#       then echoes what every secure channel that comes in carries (each
#       DTLS channel's keepalive set to KEEPALIVE-MS if given), printing
#         "accepted PEER PATH"     for each, until it is killed.
#   secure-peer.py connect ID SERVER PEER udp|tcp PIN IDLE-S [KEEPALIVE-MS]
#       Reaches PEER with rndz_client_connect_dtls()/_tls(), pinned to
#       PIN (or not, with "-"), the relay allowed, and prints
#         "connected PATH FP MS"   the path, the peer's fingerprint, MS
#                                  since the start
#         "echo MS"                a message sent and its echo back
#       then with IDLE-S > 0 sends nothing for IDLE-S seconds, the main
#       loop running (keepalives flow; a DTLS channel's interval set to
#       KEEPALIVE-MS if given), and sends another:
#         "echo-after-idle MS"     its echo came back
#       Errors: "error DOMAIN CODE TEXT" (the GError's), exit status 1.
#
# Needs PyGObject and the Rndz typelib (GI_TYPELIB_PATH, LD_LIBRARY_PATH).
# Every wait is bounded; lines are flushed at once.

import sys
import time

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Rndz', '1.0')

from gi.repository import Gio, GLib, Rndz  # noqa: E402

CONNECT_TIMEOUT = 15
ECHO_TIMEOUT = 5


def say(*words):
    print(*words, flush=True)


class Failure(Exception):
    pass


def run(start, finish, seconds):
    """Runs an async call in a main loop for at most @seconds; returns
    what @finish returns, or raises Failure"""
    loop = GLib.MainLoop()
    cancellable = Gio.Cancellable()
    out = {}

    def done(source, result):
        try:
            out['value'] = finish(result)
        except GLib.Error as e:
            out['error'] = '%s %d %s' % (e.domain, e.code, e.message)
        loop.quit()

    def give_up():
        cancellable.cancel()
        return GLib.SOURCE_REMOVE

    timer = GLib.timeout_add(int(seconds * 1000), give_up)
    start(cancellable, done)
    loop.run()
    if not cancellable.is_cancelled():
        GLib.source_remove(timer)
    if 'error' in out:
        raise Failure(out['error'])
    return out['value']


def idle(seconds):
    loop = GLib.MainLoop()
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()


def path_of(channel):
    if isinstance(channel, Rndz.DtlsChannel):
        socket = channel.get_socket()
    else:
        socket = channel.props.base_io_stream.get_socket()
    return Rndz.socket_get_path(socket).value_nick


def send(channel, data):
    if isinstance(channel, Rndz.DtlsChannel):
        channel.send_bytes(GLib.Bytes.new(data), None)
    else:
        channel.get_output_stream().write_all(data, None)


def receive(channel, seconds):
    if isinstance(channel, Rndz.DtlsChannel):
        return run(lambda c, cb: channel.receive_bytes_async(c, cb),
                   channel.receive_bytes_finish, seconds).get_data()
    stream = channel.get_input_stream()
    return run(lambda c, cb: stream.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, c, cb),
               stream.read_bytes_finish, seconds).get_data()


def client_new(own_id, server):
    client = Rndz.Client.new(own_id, [server])
    client.set_identity(Rndz.Identity.new())
    client.set_relay(True)
    client.set_timeout(CONNECT_TIMEOUT * 1000)
    return client


# Listening

def echo_forever(channel):
    def got(source, result):
        try:
            if isinstance(channel, Rndz.DtlsChannel):
                data = channel.receive_bytes_finish(result).get_data()
            else:
                data = channel.get_input_stream().read_bytes_finish(result).get_data()
            if not data:
                return
            send(channel, data)
        except GLib.Error as e:
            say('closed', e.message)
            return
        next_read()

    def next_read():
        if isinstance(channel, Rndz.DtlsChannel):
            channel.receive_bytes_async(None, got)
        else:
            channel.get_input_stream().read_bytes_async(4096, GLib.PRIORITY_DEFAULT, None, got)

    next_read()


def listen(own_id, server, transport, keepalive):
    client = client_new(own_id, server)
    udp = transport == 'udp'
    say('fingerprint', client.get_identity().get_fingerprint())
    if udp:
        run(lambda c, cb: client.listen_udp_async(c, cb), client.listen_udp_finish, CONNECT_TIMEOUT)
    else:
        run(lambda c, cb: client.listen_tcp_async(c, cb), client.listen_tcp_finish, CONNECT_TIMEOUT)
    say('ready')
    channels = []

    def accepted(source, result):
        try:
            if udp:
                channel, peer = client.accept_dtls_finish(result)
            else:
                channel, peer = client.accept_tls_finish(result)
        except GLib.Error as e:
            say('error', e.message)
            return
        if udp and keepalive is not None:
            channel.set_keepalive_interval(keepalive)
        channels.append(channel)
        say('accepted', peer, path_of(channel))
        echo_forever(channel)
        accept()

    def accept():
        if udp:
            client.accept_dtls_async(None, accepted)
        else:
            client.accept_tls_async(None, accepted)

    accept()
    GLib.MainLoop().run()


# Connecting

def connect(own_id, server, peer, transport, pin, idle_s, keepalive):
    start = time.monotonic()
    client = client_new(own_id, server)
    pin = None if pin == '-' else pin
    if transport == 'udp':
        channel = run(lambda c, cb: client.connect_dtls_async(peer, pin, c, cb),
                      client.connect_dtls_finish, CONNECT_TIMEOUT + 5)
        fingerprint = channel.get_peer_fingerprint()
        if keepalive is not None:
            channel.set_keepalive_interval(keepalive)
    else:
        channel = run(lambda c, cb: client.connect_tls_async(peer, pin, c, cb),
                      client.connect_tls_finish, CONNECT_TIMEOUT + 5)
        fingerprint = Rndz.fingerprint_from_certificate(channel.get_peer_certificate())
    connected = time.monotonic()
    say('connected', path_of(channel), fingerprint, round((connected - start) * 1000))

    for what, wait in (('echo', 0), ('echo-after-idle', idle_s)):
        if what == 'echo-after-idle' and idle_s <= 0:
            break
        idle(wait)
        message = ('%s %s %d' % (own_id, what, time.monotonic())).encode()
        sent = time.monotonic()
        send(channel, message)
        got = receive(channel, ECHO_TIMEOUT)
        if got != message:
            raise Failure('echo: got %r, not %r' % (got, message))
        say(what, round((time.monotonic() - sent) * 1000))


def main(argv):
    try:
        if len(argv) in (4, 5) and argv[0] == 'listen':
            listen(argv[1], argv[2], argv[3], int(argv[4]) if len(argv) == 5 else None)
        elif len(argv) in (7, 8) and argv[0] == 'connect':
            connect(argv[1], argv[2], argv[3], argv[4], argv[5], float(argv[6]),
                    int(argv[7]) if len(argv) == 8 else None)
        else:
            print('usage: see the top of secure-peer.py', file=sys.stderr)
            return 2
    except Failure as e:
        say('error', e)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
