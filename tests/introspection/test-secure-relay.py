#!/usr/bin/python3
# test-secure-relay.py: the server's relay carries ciphertext only
#
# SPDX-License-Identifier: MIT
#
# Issue 15, item 7, from Python: two peers that cannot reach each other
# directly talk through the server's relay, over TLS and over DTLS, and a
# tap in front of the server records every byte the relay forwards. The
# application's message crosses, and never appears in what the relay
# carried; the same exchange without TLS or DTLS shows it there (so the
# tap does see the relayed payload).
#
# No root, no namespaces: the peers reach the server through a "NAT" on
# loopback. The server listens on 127.0.0.1 (rendezvous port P, relay
# port R); the clients know it as 127.0.0.2:P and bind to 127.0.0.3, an
# address of the loopback interface, so they offer no candidates of their
# own. The tap listens on 127.0.0.2, ports P and R, TCP and UDP; for each
# client it talks to the server from a socket of its own on 127.0.0.1,
# and lets in only what comes from the server there, as a firewalled NAT
# does. So the server sees each client at the tap's address for it, the
# peers' checks to those addresses go nowhere, and the clients turn to
# the relay, which they join at the server's host as they know it: the
# tap again.
#
# Prints TAP. Needs GI_TYPELIB_PATH and LD_LIBRARY_PATH to point at the
# build tree (tests/introspection/meson.build sets them).

import os
import random
import sys

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Rndz', '1.0')

from gi.repository import GLib, Gio, Rndz  # noqa: E402

from rndz_gi_test import (  # noqa: E402
    Loop, assert_equal, call, drain, gather, run_tests, wait_until)

SERVER_HOST = '127.0.0.1'
TAP_HOST = '127.0.0.2'
CLIENT_HOST = '127.0.0.3'

# Short, so that the clients give up on direct paths and take the relay soon
DIRECT_TIMEOUT_MS = 300


def address(host, port):
    return Gio.InetSocketAddress.new_from_string(host, port)


def udp_socket(host, port):
    sock = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM,
                          Gio.SocketProtocol.UDP)
    sock.bind(address(host, port), False)
    sock.set_blocking(False)
    return sock


def watch(sock, func):
    """Calls func() whenever sock has something to read; returns the source."""
    source = sock.create_source(GLib.IOCondition.IN, None)
    # Socket sources call back with (socket, condition); PyGObject passes
    # only the user data
    source.set_callback(lambda *args: func() or GLib.SOURCE_CONTINUE)
    source.attach(None)
    return source


class Tap:
    """The loopback NAT in front of the server: records what it forwards.

    recorded[port] holds every byte that went through port (P or R), both
    ways, TCP and UDP.
    """

    def __init__(self, ports):
        self.recorded = {port: bytearray() for port in ports}
        self.sources = []
        self.sockets = []
        self.connections = []
        self.listener = Gio.SocketListener.new()
        for port in ports:
            self.forward_udp(port)
            self.listener.add_address(address(TAP_HOST, port), Gio.SocketType.STREAM,
                                      Gio.SocketProtocol.TCP, None)
        self.cancellable = Gio.Cancellable()
        self.listener.accept_async(self.cancellable, self.on_accepted)

    # UDP: one socket towards the server per client address

    def forward_udp(self, port):
        front = udp_socket(TAP_HOST, port)
        server = address(SERVER_HOST, port)
        mapped = {}     # client address -> the tap's socket towards the server
        self.sockets.append(front)

        def from_client():
            data, client = Rndz.socket_receive_bytes(front, 65536, None)
            key = client.to_string()
            if key not in mapped:
                mapped[key] = udp_socket(SERVER_HOST, 0)
                self.sockets.append(mapped[key])
                self.sources.append(watch(mapped[key], from_server(mapped[key], client)))
            self.recorded[port] += data.get_data()
            mapped[key].send_to(server, data.get_data(), None)

        def from_server(back, client):
            def forward():
                data, sender = Rndz.socket_receive_bytes(back, 65536, None)
                # Firewalled: only the server gets in
                if sender.to_string() != server.to_string():
                    return
                self.recorded[port] += data.get_data()
                front.send_to(client, data.get_data(), None)
            return forward

        self.sources.append(watch(front, from_client))

    # TCP: each connection spliced to one of its own to the server

    def on_accepted(self, listener, result):
        try:
            client, _ = listener.accept_finish(result)
        except GLib.Error:
            return      # closed
        port = client.get_local_address().get_port()
        server = Gio.SocketClient.new().connect(address(SERVER_HOST, port), None)
        self.connections += [client, server]
        self.splice(client, server, port)
        self.splice(server, client, port)
        listener.accept_async(self.cancellable, self.on_accepted)

    def splice(self, source, sink, port):
        def on_read(stream, result):
            try:
                data = stream.read_bytes_finish(result).get_data()
            except GLib.Error:
                data = b''
            if not data:
                try:
                    sink.close(None)
                except GLib.Error:
                    pass
                return
            self.recorded[port] += data
            try:
                # Small amounts into loopback's large buffers: never blocks
                sink.get_output_stream().write_all(data, None)
            except GLib.Error:
                return
            stream.read_bytes_async(65536, GLib.PRIORITY_DEFAULT, self.cancellable, on_read)

        source.get_input_stream().read_bytes_async(65536, GLib.PRIORITY_DEFAULT,
                                                   self.cancellable, on_read)

    def close(self):
        self.cancellable.cancel()
        self.listener.close()
        for source in self.sources:
            source.destroy()
        for connection in self.connections:
            try:
                connection.close(None)
            except GLib.Error:
                pass
        for sock in self.sockets:
            sock.close()


def relay_port_candidates():
    """Ports below the kernel's ephemeral range, in random order: nothing
    bound to port 0 takes them from under us."""
    with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
        low = int(f.read().split()[0])
    first = 10000 if low > 12000 else 1024
    return random.sample(range(first, low), 64)


class Rig:
    """A server with a relay on 127.0.0.1, the tap, and the clients."""

    def __init__(self):
        self.server = Rndz.Server.new()
        self.server.props.forward_timeout = 1000  # ms
        for port in relay_port_candidates():
            self.server.set_relay_port(port)
            try:
                self.server.listen(address(SERVER_HOST, 0))
                self.tap = Tap([self.server.get_port(), port])
                break
            except GLib.Error as e:
                self.server.stop()
                if not e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.ADDRESS_IN_USE):
                    raise
        else:
            raise AssertionError('no free relay port')
        self.port = self.server.get_port()
        self.relay_port = port
        self.clients = []

    def client(self, id, secure):
        client = Rndz.Client.new(id, [f'{TAP_HOST}:{self.port}'])
        client.props.timeout = 5000  # ms
        client.props.direct_timeout = DIRECT_TIMEOUT_MS
        client.set_local_address(address(CLIENT_HOST, 0))
        if secure:
            identity = Rndz.Identity.new()
            client.set_identity(identity)
        self.clients.append(client)
        return client

    def relayed(self):
        return bytes(self.tap.recorded[self.relay_port])

    def close(self):
        for client in self.clients:
            client.stop()
        self.server.stop()
        self.tap.close()
        drain()


def marker():
    """A message the relay's traffic cannot contain by chance."""
    return b'plaintext marker ' + os.urandom(8).hex().encode()


def receive_datagram(sock):
    """The next datagram on a Gio.Socket, waiting in the main loop."""
    loop = Loop()
    got = []

    def on_readable():
        got.append(Rndz.socket_receive_bytes(sock, 65536, None)[0].get_data())
        loop.quit()
        return GLib.SOURCE_REMOVE

    source = watch(sock, loop.callback(on_readable))
    try:
        loop.run()
    finally:
        source.destroy()
    return got[0]


def read(connection, size):
    [data] = gather(call(connection.get_input_stream(), 'read_bytes',
                         size, GLib.PRIORITY_DEFAULT, None))
    return data.get_data()


def write(connection, data):
    [written] = gather(call(connection.get_output_stream(), 'write_bytes',
                            GLib.Bytes.new(data), GLib.PRIORITY_DEFAULT, None))
    assert_equal(written, len(data))


def assert_carried(rig, messages, secure):
    relayed = rig.relayed()
    # The exchange went through the relay, the messages whole at least
    assert len(relayed) >= sum(map(len, messages)), f'{len(relayed)} bytes through the relay'
    for message in messages:
        if secure:
            assert message not in relayed, 'the relay carried the plaintext'
        else:
            assert message in relayed, 'the tap did not see the relayed payload'


# Exchanges: a message each way through the relay, and what the relay saw

def exchange_udp(secure):
    rig = Rig()
    try:
        listener = rig.client('py-listener', secure)
        connector = rig.client('py-connector', secure)
        peer_sockets = []
        listener.connect('peer-socket', lambda client, peer_id, sock: peer_sockets.append(sock))
        [listening] = gather(call(listener, 'listen_udp', None))

        there, back = marker(), marker()
        if secure:
            connected, (accepted, peer_id) = gather(
                call(connector, 'connect_dtls', 'py-listener', None, None),
                call(listener, 'accept_dtls', None))
            assert_equal(Rndz.socket_get_path(connected.get_socket()), Rndz.Path.RELAYED)
            assert connected.send_bytes(GLib.Bytes.new(there), None)
            [data] = gather(call(accepted, 'receive_bytes', None))
            assert_equal(data.get_data(), there)
            assert accepted.send_bytes(GLib.Bytes.new(back), None)
            [data] = gather(call(connected, 'receive_bytes', None))
            assert_equal(data.get_data(), back)
        else:
            [connected] = gather(call(connector, 'connect_udp', 'py-listener', None))
            assert_equal(Rndz.socket_get_path(connected), Rndz.Path.RELAYED)
            wait_until(lambda: peer_sockets)
            assert_equal(connected.send(there, None), len(there))
            assert_equal(receive_datagram(peer_sockets[0]), there)
            assert_equal(peer_sockets[0].send(back, None), len(back))
            assert_equal(receive_datagram(connected), back)
        assert_carried(rig, [there, back], secure)
        listening.close()
    finally:
        rig.close()


def exchange_tcp(secure):
    rig = Rig()
    try:
        listener = rig.client('py-listener', secure)
        connector = rig.client('py-connector', secure)
        [listened] = gather(call(listener, 'listen_tcp', None))
        assert listened is True

        there, back = marker(), marker()
        if secure:
            connected, (accepted, peer_id) = gather(
                call(connector, 'connect_tls', 'py-listener', None, None),
                call(listener, 'accept_tls', None))
            base = connected.props.base_io_stream
        else:
            connected, (accepted, peer_id) = gather(
                call(connector, 'connect_tcp', 'py-listener', None),
                call(listener, 'accept', None))
            base = connected
        assert_equal(Rndz.socket_get_path(base.get_socket()), Rndz.Path.RELAYED)
        write(connected, there)
        assert_equal(read(accepted, len(there)), there)
        write(accepted, back)
        assert_equal(read(connected, len(back)), back)
        assert_carried(rig, [there, back], secure)
        connected.close(None)
        accepted.close(None)
    finally:
        rig.close()


def test_dtls_relayed():
    """UDP: DTLS through the relay; the relay never carries the plaintext"""
    exchange_udp(secure=True)


def test_udp_relayed_plain():
    """UDP without DTLS: the relay carries the plaintext (the tap sees it)"""
    exchange_udp(secure=False)


def test_tls_relayed():
    """TCP: TLS through the relay; the relay never carries the plaintext"""
    exchange_tcp(secure=True)


def test_tcp_relayed_plain():
    """TCP without TLS: the relay carries the plaintext (the tap sees it)"""
    exchange_tcp(secure=False)


TESTS = [
    test_dtls_relayed,
    test_udp_relayed_plain,
    test_tls_relayed,
    test_tcp_relayed_plain,
]


if __name__ == '__main__':
    sys.exit(run_tests(TESTS))
