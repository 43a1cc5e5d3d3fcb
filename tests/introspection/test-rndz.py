#!/usr/bin/python3
# test-rndz.py: Rndz from Python, through GObject introspection
#
# SPDX-License-Identifier: MIT
#
# Runs a rendezvous server, a listener and a connector in one GLib.MainLoop
# and checks that everything a Python program needs works: the async
# methods with callbacks (PyGObject 3.42 cannot await), the GIO objects
# they return, the peer-request signal, the properties, and errors as
# GLib.Error with the right domain and code.
#
# Prints TAP. Needs GI_TYPELIB_PATH and LD_LIBRARY_PATH to point at the
# build tree (tests/introspection/meson.build sets them).

import sys

import gi

gi.require_version('GLib', '2.0')
gi.require_version('GObject', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Rndz', '1.0')

from gi.repository import GLib, GObject, Gio, Rndz  # noqa: E402

from rndz_gi_test import (  # noqa: E402
    Fixture, Loop, assert_equal, assert_error, drain, run_tests)


class DatagramReader:
    """Reads datagrams, with their sender, from a non-blocking Gio.Socket.

    Gio.Socket.receive() and receive_from() cannot be called from Python
    with GLib 2.74: their buffer is an (out caller-allocates) array that
    PyGObject 3.42 hands back empty. Rndz.socket_receive_bytes() returns
    the datagram as GLib.Bytes instead.
    """

    def __init__(self, socket):
        self.socket = socket

    def receive(self):
        data, sender = Rndz.socket_receive_bytes(self.socket, 65536, None)
        return data.get_data(), sender

    def watch(self, loop, func):
        """Calls func(data, sender) for every datagram, from the main loop."""
        def on_readable(*args):
            func(*self.receive())
            return GLib.SOURCE_CONTINUE

        # Socket sources call back with (socket, condition); PyGObject passes
        # only the user data, which is why on_readable takes *args.
        self.source = self.socket.create_source(GLib.IOCondition.IN, None)
        self.source.set_callback(loop.callback(on_readable))
        self.source.attach(None)

    def close(self):
        if getattr(self, 'source', None) is not None:
            self.source.destroy()


# Tests

def test_types():
    """The typelib has the classes, enums, error domains and constants"""
    assert issubclass(Rndz.Server, GObject.Object)
    assert issubclass(Rndz.Client, GObject.Object)
    assert_equal(Rndz.MAJOR_VERSION, 1)
    assert isinstance(Rndz.VERSION_S, str)
    assert_equal(GLib.quark_to_string(Rndz.error_quark()), 'rndz-error-quark')
    assert_equal(GLib.quark_to_string(Rndz.protocol_error_quark()),
                 'rndz-protocol-error-quark')
    assert_equal(int(Rndz.Error.PEER_NOT_FOUND), 1)
    assert_equal(Rndz.Transport.TCP.value_nick, 'tcp')
    assert_equal(Rndz.ClientState.REGISTERED.value_nick, 'registered')


def test_client_properties():
    """Client properties and their accessors agree"""
    client = Rndz.Client.new('alice', ['127.0.0.1:1', '[::1]:2'])
    assert_equal(client.props.id, 'alice')
    assert_equal(client.get_id(), 'alice')
    assert_equal(list(client.props.servers), ['127.0.0.1:1', '[::1]:2'])
    assert_equal(list(client.get_servers()), ['127.0.0.1:1', '[::1]:2'])
    assert_equal(client.props.state, Rndz.ClientState.IDLE)
    assert_equal(client.get_state(), Rndz.ClientState.IDLE)
    assert_equal(client.props.local_port, 0)
    assert_equal(client.props.last_pong, 0)
    assert client.props.local_address is None

    notified = []
    client.connect('notify::timeout', lambda obj, pspec: notified.append(pspec.name))
    # Every timeout and interval is in milliseconds
    assert_equal(client.props.timeout, 10000)
    assert_equal(client.get_keepalive_interval(), 10000)
    assert_equal(client.get_direct_timeout(), 3000)
    client.set_timeout(3500)
    assert_equal(client.props.timeout, 3500)
    assert_equal(notified, ['timeout'])
    client.props.keepalive_interval = 7000
    assert_equal(client.get_keepalive_interval(), 7000)

    address = Gio.InetSocketAddress.new_from_string('127.0.0.1', 0)
    client.set_local_address(address)
    assert_equal(client.props.local_address.get_address().to_string(), '127.0.0.1')
    client.props.local_address = None
    assert client.get_local_address() is None

    # Construction with properties, as GObject does it
    other = Rndz.Client(id='bob', servers=['localhost:8888'], timeout=2000)
    assert_equal(other.get_id(), 'bob')
    assert_equal(other.get_timeout(), 2000)


def test_server_listen():
    """A server listens on port 0 and reports the port it got"""
    server = Rndz.Server.new()
    assert_equal(server.get_port(), 0)
    assert server.get_local_address() is None
    assert_equal(server.props.peer_timeout, 60000)
    server.props.peer_timeout = 30000
    assert_equal(server.get_peer_timeout(), 30000)
    server.set_relay_port(65535)
    assert_equal(server.props.relay_port, 65535)
    server.set_relay_port(0)
    server.set_max_peers(10)
    assert_equal(server.props.max_peers, 10)

    assert server.listen(Gio.InetSocketAddress.new_from_string('127.0.0.1', 0))
    port = server.get_port()
    assert port > 0
    address = server.get_local_address()
    assert isinstance(address, Gio.InetSocketAddress)
    assert_equal(address.get_port(), port)
    assert_equal(address.get_address().to_string(), '127.0.0.1')
    assert_equal(server.props.peer_count, 0)

    # Taken: the error is a GLib.Error of the G_IO_ERROR domain
    other = Rndz.Server.new()
    try:
        other.listen(address)
    except GLib.Error as e:
        assert_error(e, Gio.io_error_quark(), Gio.IOErrorEnum.ADDRESS_IN_USE)
    else:
        raise AssertionError('listening twice on one port succeeded')

    server.stop()
    assert_equal(server.get_port(), 0)


def test_udp_rendezvous():
    """UDP: listen, peer-request, state, connect, datagrams both ways"""
    fixture = Fixture()
    loop = Loop()
    listener = fixture.client('py-listener')
    connector = fixture.client('py-connector')
    states = []
    requests = []
    registered = []
    readers = []
    got = {}

    listener.connect('notify::state', lambda obj, pspec: states.append(obj.props.state))
    listener.connect('peer-request',
                     lambda client, peer_id, address: requests.append((peer_id, address)))
    fixture.server.connect('peer-registered',
                           lambda server, id, transport, address: registered.append((id, transport)))

    def on_listened(client, result):
        socket = client.listen_udp_finish(result)
        assert isinstance(socket, Gio.Socket)
        assert_equal(client.props.state, Rndz.ClientState.REGISTERED)
        assert_equal(client.props.local_port, socket.get_local_address().get_port())
        assert client.props.last_pong > 0
        assert ('py-listener', Rndz.Transport.UDP) in registered

        got['listening'] = socket
        reader = DatagramReader(socket)
        readers.append(reader)
        reader.watch(loop, on_listener_datagram)
        connector.connect_udp_async('py-listener', None, loop.callback(on_connected))

    def on_connected(client, result):
        socket = client.connect_udp_finish(result)
        assert isinstance(socket, Gio.Socket)
        assert socket.is_connected()
        assert_equal([peer_id for peer_id, _ in requests], ['py-connector'])
        got['connected'] = socket

        reader = DatagramReader(socket)
        readers.append(reader)
        reader.watch(loop, on_connector_datagram)
        assert_equal(socket.send(b'hello', None), 5)

    def on_listener_datagram(data, sender):
        assert_equal(data, b'hello')
        # It comes from the port the connector talked to the server from
        local = got['connected'].get_local_address()
        assert_equal(sender.get_port(), local.get_port())
        # The server saw the connector at that same address
        assert_equal(requests[0][1].get_port(), local.get_port())
        assert_equal(got['listening'].send_to(sender, b'world', None), 5)

    def on_connector_datagram(data, sender):
        assert_equal(data, b'world')
        loop.quit()

    listener.listen_udp_async(None, loop.callback(on_listened))
    try:
        loop.run()
        assert_equal(states[:2], [Rndz.ClientState.REGISTERING, Rndz.ClientState.REGISTERED])
        assert fixture.server.get_statistics().unpack()['redirected'] >= 1
        listener.stop()
        assert_equal(listener.props.state, Rndz.ClientState.IDLE)
        assert_equal(listener.props.local_port, 0)
        # The socket is the caller's: stop() leaves it open
        assert not got['listening'].is_closed()
    finally:
        for reader in readers:
            reader.close()
        fixture.close()


def test_tcp_rendezvous():
    """TCP: listen, accept with the peer id, connect, streams both ways"""
    fixture = Fixture()
    loop = Loop()
    listener = fixture.client('py-listener')
    connector = fixture.client('py-connector')
    requests = []
    got = {}

    listener.connect('peer-request', lambda client, peer_id, address: requests.append(peer_id))

    def on_listened(client, result):
        assert client.listen_tcp_finish(result) is True
        assert_equal(client.props.state, Rndz.ClientState.REGISTERED)
        client.accept_async(None, loop.callback(on_accepted))
        connector.connect_tcp_async('py-listener', None, loop.callback(on_connected))

    def on_accepted(client, result):
        connection, peer_id = client.accept_finish(result)
        assert isinstance(connection, Gio.SocketConnection)
        assert_equal(peer_id, 'py-connector')
        got['accepted'] = connection
        # Echo what comes in
        connection.get_input_stream().read_bytes_async(
            5, GLib.PRIORITY_DEFAULT, None, loop.callback(on_accepted_read))

    def on_accepted_read(stream, result):
        data = stream.read_bytes_finish(result).get_data()
        assert_equal(data, b'ping!')
        got['accepted'].get_output_stream().write_all(b'pong!', None)

    def on_connected(client, result):
        connection = client.connect_tcp_finish(result)
        assert isinstance(connection, Gio.SocketConnection)
        assert connection.is_connected()
        assert_equal(requests, ['py-connector'])
        got['connected'] = connection
        output = connection.get_output_stream()
        output.write_bytes_async(GLib.Bytes.new(b'ping!'), GLib.PRIORITY_DEFAULT, None,
                                 loop.callback(on_written))

    def on_written(stream, result):
        assert_equal(stream.write_bytes_finish(result), 5)
        got['connected'].get_input_stream().read_bytes_async(
            5, GLib.PRIORITY_DEFAULT, None, loop.callback(on_connected_read))

    def on_connected_read(stream, result):
        assert_equal(stream.read_bytes_finish(result).get_data(), b'pong!')
        loop.quit()

    listener.listen_tcp_async(None, loop.callback(on_listened))
    try:
        loop.run()
    finally:
        for connection in (got.get('accepted'), got.get('connected')):
            if connection is not None:
                connection.close(None)
        fixture.close()


def test_peer_not_found():
    """Reaching an unknown peer fails with Rndz.Error.PEER_NOT_FOUND"""
    fixture = Fixture()
    loop = Loop()
    connector = fixture.client('py-connector')
    errors = []

    def on_connected(client, result):
        try:
            client.connect_udp_finish(result)
        except GLib.Error as e:
            errors.append(e)
        loop.quit()

    connector.connect_udp_async('nobody', None, loop.callback(on_connected))
    try:
        loop.run()
    finally:
        fixture.close()

    assert_equal(len(errors), 1)
    error = errors[0]
    assert_error(error, Rndz.error_quark(), Rndz.Error.PEER_NOT_FOUND)
    assert_equal(error.domain, 'rndz-error-quark')
    assert_equal(error.code, int(Rndz.Error.PEER_NOT_FOUND))
    assert error.message


def test_io_errors():
    """Invalid ids, cancellation and misuse fail with G_IO_ERROR codes"""
    fixture = Fixture()
    loop = Loop()
    client = fixture.client('py-client')
    results = {}

    def finish(name, finish_func):
        def on_done(source, result):
            try:
                results[name] = finish_func(result)
            except GLib.Error as e:
                results[name] = e
            if len(results) == 2:
                loop.quit()
        return loop.callback(on_done)

    cancellable = Gio.Cancellable()
    cancellable.cancel()
    client.connect_tcp_async('', None, finish('invalid', client.connect_tcp_finish))
    client.listen_udp_async(cancellable, finish('cancelled', client.listen_udp_finish))
    try:
        loop.run()
        assert_error(results['invalid'], Gio.io_error_quark(), Gio.IOErrorEnum.INVALID_ARGUMENT)
        assert_error(results['cancelled'], Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED)
        assert_equal(client.props.state, Rndz.ClientState.IDLE)

        # The synchronous API raises too
        try:
            client.accept(None)
        except GLib.Error as e:
            assert_error(e, Gio.io_error_quark(), Gio.IOErrorEnum.NOT_CONNECTED)
        else:
            raise AssertionError('accept() without listening succeeded')
    finally:
        fixture.close()


def test_server_unreachable():
    """A server address that does not parse fails with SERVER_UNREACHABLE"""
    loop = Loop()
    client = Rndz.Client.new('py-client', ['no port here'])
    errors = []

    def on_listened(source, result):
        try:
            source.listen_udp_finish(result)
        except GLib.Error as e:
            errors.append(e)
        loop.quit()

    client.listen_udp_async(None, loop.callback(on_listened))
    loop.run()
    assert_equal(len(errors), 1)
    assert_error(errors[0], Rndz.error_quark(), Rndz.Error.SERVER_UNREACHABLE)
    drain()


def test_stop_says_bye():
    """Stopping a listener removes it from the server"""
    fixture = Fixture()
    loop = Loop()
    listener = fixture.client('py-listener')
    removed = []

    def on_removed(server, id, transport):
        removed.append((id, transport))
        loop.quit()

    def on_listened(client, result):
        socket = client.listen_udp_finish(result)
        socket.close()
        assert_equal(fixture.server.props.peer_count, 1)
        client.stop()

    fixture.server.connect('peer-removed', loop.callback(on_removed))
    listener.listen_udp_async(None, loop.callback(on_listened))
    try:
        loop.run()
        assert_equal(removed, [('py-listener', Rndz.Transport.UDP)])
        assert_equal(fixture.server.get_peer_count(), 0)
    finally:
        fixture.close()


def test_authenticated():
    """Keys as GLib.Bytes: derived keys let peers in, no key does not;
    public-addresses is a list of str"""
    secret = GLib.Bytes.new(b'not a good secret')
    key = Rndz.derive_key(secret, 'py-listener')
    assert_equal(key.get_size(), 32)
    text = Rndz.key_to_hex(key)
    assert_equal(Rndz.key_from_hex(text).get_data(), key.get_data())
    try:
        Rndz.key_from_hex('not hex')
    except GLib.Error as e:
        assert_error(e, Gio.io_error_quark(), Gio.IOErrorEnum.INVALID_DATA)
    else:
        raise AssertionError('key_from_hex() accepted "not hex"')

    fixture = Fixture()
    fixture.server.set_secret(secret)
    assert fixture.server.props.auth_required
    # Names for a server behind port forwarding: a list of str, canonical
    assert_equal(fixture.server.props.public_addresses, [])
    fixture.server.props.public_addresses = ['[2001:DB8::7]:8888']
    assert_equal(fixture.server.get_public_addresses(), ['[2001:db8::7]:8888'])
    fixture.server.set_public_addresses(None)
    assert_equal(fixture.server.props.public_addresses, [])
    loop = Loop()
    listener = fixture.client('py-listener')
    listener.set_key(key)
    listener.props.require_auth = True
    assert_equal(listener.props.key.get_data(), key.get_data())
    connector = fixture.client('py-connector')
    connector.props.key = Rndz.derive_key(secret, 'py-connector')
    stranger = fixture.client('py-stranger')
    stranger.props.timeout = 1000
    results = {}

    def on_listened(client, result):
        client.listen_udp_finish(result).close()
        connector.connect_udp_async('py-listener', None, loop.callback(on_connected))
        stranger.connect_udp_async('py-listener', None, loop.callback(on_stranger))

    def on_connected(client, result):
        results['connector'] = client.connect_udp_finish(result)
        if len(results) == 2:
            loop.quit()

    def on_stranger(client, result):
        try:
            results['stranger'] = client.connect_udp_finish(result)
        except GLib.Error as e:
            results['stranger'] = e
        if len(results) == 2:
            loop.quit()

    listener.listen_udp_async(None, loop.callback(on_listened))
    try:
        loop.run()
        assert isinstance(results['connector'], Gio.Socket)
        results['connector'].close()
        # Without a key, the server says it wants one
        assert_error(results['stranger'], Rndz.error_quark(), Rndz.Error.AUTH_REQUIRED)
    finally:
        fixture.close()


TESTS = [
    test_types,
    test_client_properties,
    test_server_listen,
    test_udp_rendezvous,
    test_tcp_rendezvous,
    test_peer_not_found,
    test_io_errors,
    test_server_unreachable,
    test_stop_says_bye,
    test_authenticated,
]


if __name__ == '__main__':
    sys.exit(run_tests(TESTS))
