// test-rndz.js: Rndz from JavaScript (GJS), through GObject introspection
//
// SPDX-License-Identifier: MIT
//
// Runs a rendezvous server, a listener and a connector in one GLib.MainLoop
// and checks that everything a GJS program needs works: the async methods
// turned into promises with Gio._promisify(), the GIO objects they return,
// the peer-request signal, the properties, and errors as GLib.Error with
// the right domain and code.
//
// Prints TAP. Run as an ES module: gjs -m test-rndz.js, with GI_TYPELIB_PATH
// and LD_LIBRARY_PATH pointing at the build tree (tests/introspection/
// meson.build sets them).

import GLib from 'gi://GLib?version=2.0';
import GObject from 'gi://GObject?version=2.0';
import Gio from 'gi://Gio?version=2.0';
import Rndz from 'gi://Rndz?version=1.0';
import {
    assert, assertEqual, assertError, drain, nextSignal, runTests, withFixture,
} from './rndz-gi-test.js';

// foo_async (..., callback) + foo_finish () become foo_async (...) returning
// a promise, when no callback is given
for (const method of ['listen_udp', 'listen_tcp', 'accept', 'connect_udp', 'connect_tcp'])
    Gio._promisify(Rndz.Client.prototype, `${method}_async`, `${method}_finish`);
Gio._promisify(Gio.InputStream.prototype, 'read_bytes_async', 'read_bytes_finish');
Gio._promisify(Gio.OutputStream.prototype, 'write_bytes_async', 'write_bytes_finish');

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Gio.Socket.receive() and receive_from() cannot be called from GJS 1.74
// with GLib 2.74: their buffer is an (out caller-allocates) array.
// Rndz.socket_receive_bytes() returns the datagram as GLib.Bytes instead.
class DatagramReader {
    constructor(socket) {
        this.socket = socket;
    }

    readable() {
        return new Promise(resolve => {
            const source = this.socket.create_source(GLib.IOCondition.IN, null);
            source.set_callback(() => {
                resolve();
                return GLib.SOURCE_REMOVE;
            });
            source.attach(null);
        });
    }

    async receive() {
        await this.readable();
        const [bytes, sender] = Rndz.socket_receive_bytes(this.socket, 65536, null);
        return [decoder.decode(bytes.toArray()), sender];
    }
}

// Tests

const tests = [];

function test(name, description, func) {
    tests.push({name, description, func});
}

test('types', 'The typelib has the classes, enums, error domains and constants', () => {
    assert(Rndz.Server.prototype instanceof GObject.Object);
    assert(Rndz.Client.prototype instanceof GObject.Object);
    assertEqual(Rndz.MAJOR_VERSION, 1);
    assertEqual(typeof Rndz.VERSION_S, 'string');
    assertEqual(GLib.quark_to_string(Rndz.error_quark()), 'rndz-error-quark');
    assertEqual(GLib.quark_to_string(Rndz.protocol_error_quark()), 'rndz-protocol-error-quark');
    assertEqual(Rndz.Error.PEER_NOT_FOUND, 1);
    assertEqual(Rndz.ClientState.REGISTERED, 2);
    assertEqual(Rndz.Transport.TCP, 1);
});

test('client-properties', 'Client properties and their accessors agree', () => {
    const client = Rndz.Client.new('alice', ['127.0.0.1:1', '[::1]:2']);
    assertEqual(client.id, 'alice');
    assertEqual(client.get_id(), 'alice');
    assertEqual(client.servers.join(' '), '127.0.0.1:1 [::1]:2');
    assertEqual(client.get_servers().join(' '), '127.0.0.1:1 [::1]:2');
    assertEqual(client.state, Rndz.ClientState.IDLE);
    assertEqual(client.get_state(), Rndz.ClientState.IDLE);
    assertEqual(client.local_port, 0);
    assertEqual(client.last_pong, 0);
    assertEqual(client.local_address, null);

    const notified = [];
    client.connect('notify::timeout', (object, pspec) => notified.push(pspec.name));
    // Every timeout and interval is in milliseconds
    assertEqual(client.timeout, 10000);
    assertEqual(client.get_keepalive_interval(), 10000);
    assertEqual(client.get_direct_timeout(), 3000);
    client.set_timeout(3500);
    assertEqual(client.timeout, 3500);
    assertEqual(notified.join(), 'timeout');
    client.keepalive_interval = 7000;
    assertEqual(client.get_keepalive_interval(), 7000);

    client.set_local_address(Gio.InetSocketAddress.new_from_string('127.0.0.1', 0));
    assertEqual(client.local_address.get_address().to_string(), '127.0.0.1');
    client.local_address = null;
    assertEqual(client.get_local_address(), null);

    // Construction with properties, as GObject does it
    const other = new Rndz.Client({id: 'bob', servers: ['localhost:8888'], timeout: 2000});
    assertEqual(other.get_id(), 'bob');
    assertEqual(other.get_timeout(), 2000);
});

test('server-listen', 'A server listens on port 0 and reports the port it got', () => {
    const server = Rndz.Server.new();
    assertEqual(server.get_port(), 0);
    assertEqual(server.get_local_address(), null);
    assertEqual(server.peer_timeout, 60000);
    server.peer_timeout = 30000;
    assertEqual(server.get_peer_timeout(), 30000);
    server.set_relay_port(65535);
    assertEqual(server.relay_port, 65535);
    server.set_relay_port(0);
    server.set_max_peers(10);
    assertEqual(server.max_peers, 10);

    assert(server.listen(Gio.InetSocketAddress.new_from_string('127.0.0.1', 0)));
    const port = server.get_port();
    assert(port > 0);
    const address = server.get_local_address();
    assert(address instanceof Gio.InetSocketAddress);
    assertEqual(address.get_port(), port);
    assertEqual(address.get_address().to_string(), '127.0.0.1');
    assertEqual(server.peer_count, 0);
    assertEqual(server.get_statistics().deepUnpack().peers_udp, 0);

    // Taken: the error is a GLib.Error of the G_IO_ERROR domain
    const other = Rndz.Server.new();
    let error = null;
    try {
        other.listen(address);
    } catch (e) {
        error = e;
    }
    assertError(error, Gio.IOErrorEnum, Gio.IOErrorEnum.ADDRESS_IN_USE);

    server.stop();
    assertEqual(server.get_port(), 0);
});

test('udp-rendezvous', 'UDP: listen, peer-request, state, connect, datagrams both ways', () => withFixture(async fixture => {
    const listener = fixture.client('js-listener');
    const connector = fixture.client('js-connector');
    const states = [];
    const requests = [];
    const registered = [];

    listener.connect('notify::state', object => states.push(object.state));
    listener.connect('peer-request', (client, peerId, address) => requests.push([peerId, address]));
    fixture.server.connect('peer-registered', (server, id, transport) => registered.push(`${id}/${transport}`));

    const listening = await listener.listen_udp_async(null);
    assert(listening instanceof Gio.Socket);
    assertEqual(listener.state, Rndz.ClientState.REGISTERED);
    assertEqual(states.join(), [Rndz.ClientState.REGISTERING, Rndz.ClientState.REGISTERED].join());
    assertEqual(listener.local_port, listening.get_local_address().get_port());
    assert(listener.last_pong > 0);
    assert(registered.includes(`js-listener/${Rndz.Transport.UDP}`));

    const connected = await connector.connect_udp_async('js-listener', null);
    assert(connected instanceof Gio.Socket);
    assert(connected.is_connected());
    assertEqual(requests.length, 1);
    assertEqual(requests[0][0], 'js-connector');

    const listenerReader = new DatagramReader(listening);
    const connectorReader = new DatagramReader(connected);

    assertEqual(connected.send(encoder.encode('hello'), null), 5);
    const [hello, sender] = await listenerReader.receive();
    assertEqual(hello, 'hello');
    // It comes from the port the connector talked to the server from, and
    // the server saw the connector there too
    const local = connected.get_local_address();
    assertEqual(sender.get_port(), local.get_port());
    assertEqual(requests[0][1].get_port(), local.get_port());

    assertEqual(listening.send_to(sender, encoder.encode('world'), null), 5);
    const [world] = await connectorReader.receive();
    assertEqual(world, 'world');

    listener.stop();
    assertEqual(listener.state, Rndz.ClientState.IDLE);
    assertEqual(listener.local_port, 0);
    // The socket is the caller's: stop() leaves it open
    assert(!listening.is_closed());
}));

test('tcp-rendezvous', 'TCP: listen, accept with the peer id, connect, streams both ways', () => withFixture(async fixture => {
    const listener = fixture.client('js-listener');
    const connector = fixture.client('js-connector');
    const requests = [];

    listener.connect('peer-request', (client, peerId) => requests.push(peerId));

    assertEqual(await listener.listen_tcp_async(null), true);
    assertEqual(listener.state, Rndz.ClientState.REGISTERED);

    const [[accepted, peerId], connected] = await Promise.all([
        listener.accept_async(null),
        connector.connect_tcp_async('js-listener', null),
    ]);
    try {
        assert(accepted instanceof Gio.SocketConnection);
        assert(connected instanceof Gio.SocketConnection);
        assert(connected.is_connected());
        assertEqual(peerId, 'js-connector');
        assertEqual(requests.join(), 'js-connector');

        const written = await connected.get_output_stream().write_bytes_async(
            new GLib.Bytes(encoder.encode('ping!')), GLib.PRIORITY_DEFAULT, null);
        assertEqual(written, 5);
        let bytes = await accepted.get_input_stream().read_bytes_async(5, GLib.PRIORITY_DEFAULT, null);
        assertEqual(decoder.decode(bytes.toArray()), 'ping!');

        await accepted.get_output_stream().write_bytes_async(
            new GLib.Bytes(encoder.encode('pong!')), GLib.PRIORITY_DEFAULT, null);
        bytes = await connected.get_input_stream().read_bytes_async(5, GLib.PRIORITY_DEFAULT, null);
        assertEqual(decoder.decode(bytes.toArray()), 'pong!');
    } finally {
        accepted.close(null);
        connected.close(null);
    }
}));

test('peer-not-found', 'Reaching an unknown peer fails with Rndz.Error.PEER_NOT_FOUND', () => withFixture(async fixture => {
    const connector = fixture.client('js-connector');
    let error = null;
    try {
        await connector.connect_udp_async('nobody', null);
    } catch (e) {
        error = e;
    }
    assertError(error, Rndz.Error, Rndz.Error.PEER_NOT_FOUND);
    assert(error.matches(Rndz.error_quark(), Rndz.Error.PEER_NOT_FOUND));
    assertEqual(error.domain, Rndz.error_quark());
    assertEqual(error.code, Rndz.Error.PEER_NOT_FOUND);
    assert(error.message.length > 0);
}));

test('io-errors', 'Invalid ids, cancellation and misuse fail with G_IO_ERROR codes', () => withFixture(async fixture => {
    const client = fixture.client('js-client');
    const cancellable = new Gio.Cancellable();
    cancellable.cancel();

    const [invalid, cancelled] = await Promise.allSettled([
        client.connect_tcp_async('', null),
        client.listen_udp_async(cancellable),
    ]);
    assertEqual(invalid.status, 'rejected');
    assertError(invalid.reason, Gio.IOErrorEnum, Gio.IOErrorEnum.INVALID_ARGUMENT);
    assertEqual(cancelled.status, 'rejected');
    assertError(cancelled.reason, Gio.IOErrorEnum, Gio.IOErrorEnum.CANCELLED);
    assertEqual(client.state, Rndz.ClientState.IDLE);

    // The synchronous API throws too
    let error = null;
    try {
        client.accept(null);
    } catch (e) {
        error = e;
    }
    assertError(error, Gio.IOErrorEnum, Gio.IOErrorEnum.NOT_CONNECTED);
}));

test('server-unreachable', 'A server address that does not parse fails with SERVER_UNREACHABLE', async () => {
    const client = Rndz.Client.new('js-client', ['no port here']);
    let error = null;
    try {
        await client.listen_udp_async(null);
    } catch (e) {
        error = e;
    }
    assertError(error, Rndz.Error, Rndz.Error.SERVER_UNREACHABLE);
    drain();
});

test('stop-says-bye', 'Stopping a listener removes it from the server', () => withFixture(async fixture => {
    const listener = fixture.client('js-listener');
    const removed = nextSignal(fixture.server, 'peer-removed');

    const socket = await listener.listen_udp_async(null);
    socket.close();
    assertEqual(fixture.server.peer_count, 1);
    listener.stop();

    const [id, transport] = await removed;
    assertEqual(id, 'js-listener');
    assertEqual(transport, Rndz.Transport.UDP);
    assertEqual(fixture.server.get_peer_count(), 0);
}));

test('authenticated', 'Keys as GLib.Bytes: derived keys let peers in, no key does not', () => {
    const secret = new GLib.Bytes(encoder.encode('not a good secret'));
    const key = Rndz.derive_key(secret, 'js-listener');
    assertEqual(key.get_size(), 32);
    const text = Rndz.key_to_hex(key);
    assertEqual(Rndz.key_to_hex(Rndz.key_from_hex(text)), text);
    let error = null;
    try {
        Rndz.key_from_hex('not hex');
    } catch (e) {
        error = e;
    }
    assertError(error, Gio.IOErrorEnum, Gio.IOErrorEnum.INVALID_DATA);

    return withFixture(async fixture => {
        fixture.server.set_secret(secret);
        assert(fixture.server.auth_required);
        const listener = fixture.client('js-listener');
        listener.set_key(key);
        listener.require_auth = true;
        assertEqual(Rndz.key_to_hex(listener.key), text);
        const connector = fixture.client('js-connector');
        connector.key = Rndz.derive_key(secret, 'js-connector');
        const stranger = fixture.client('js-stranger');
        stranger.timeout = 1000;

        (await listener.listen_udp_async(null)).close();
        const [connected, rejected] = await Promise.allSettled([
            connector.connect_udp_async('js-listener', null),
            stranger.connect_udp_async('js-listener', null),
        ]);
        assertEqual(connected.status, 'fulfilled');
        assert(connected.value instanceof Gio.Socket);
        connected.value.close();
        // Without a key, the server says it wants one
        assertEqual(rejected.status, 'rejected');
        assertError(rejected.reason, Rndz.Error, Rndz.Error.AUTH_REQUIRED);
    });
});

runTests(tests);
