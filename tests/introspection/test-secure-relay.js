// test-secure-relay.js: the server's relay carries ciphertext only, from GJS
//
// SPDX-License-Identifier: MIT
//
// The twin of test-secure-relay.py (which explains the rig at length): two
// peers that cannot reach each other directly talk through the server's
// relay over DTLS and over TLS, and a tap in front of the server records
// every byte the relay port forwards. The message crosses and is never in
// the relay's traffic; without DTLS or TLS it is (so the tap sees the
// relayed payload).
//
// The server is on 127.0.0.1; the clients know it as 127.0.0.2, where the
// tap forwards TCP and UDP from one socket of its own per client and lets
// in only the server's answers, and bind to 127.0.0.3, so they offer no
// candidates: their direct checks go nowhere and they take the relay.
//
// Prints TAP. Run as an ES module: gjs -m test-secure-relay.js, with
// GI_TYPELIB_PATH and LD_LIBRARY_PATH pointing at the build tree.

import GLib from 'gi://GLib?version=2.0';
import Gio from 'gi://Gio?version=2.0';
import Rndz from 'gi://Rndz?version=1.0';
import {assert, assertEqual, drain, runTests} from './rndz-gi-test.js';

const SERVER_HOST = '127.0.0.1';
const TAP_HOST = '127.0.0.2';
const CLIENT_HOST = '127.0.0.3';

// Short, so that the clients give up on direct paths and take the relay soon
const DIRECT_TIMEOUT_MS = 300;

for (const method of ['listen_udp', 'listen_tcp', 'accept', 'accept_tls', 'accept_dtls',
    'connect_udp', 'connect_tcp', 'connect_tls', 'connect_dtls'])
    Gio._promisify(Rndz.Client.prototype, `${method}_async`, `${method}_finish`);
Gio._promisify(Rndz.DtlsChannel.prototype, 'receive_bytes_async', 'receive_bytes_finish');
Gio._promisify(Gio.InputStream.prototype, 'read_bytes_async', 'read_bytes_finish');
Gio._promisify(Gio.OutputStream.prototype, 'write_bytes_async', 'write_bytes_finish');
Gio._promisify(Gio.SocketListener.prototype, 'accept_async', 'accept_finish');

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function address(host, port) {
    return Gio.InetSocketAddress.new_from_string(host, port);
}

function udpSocket(host, port) {
    const socket = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM,
        Gio.SocketProtocol.UDP);
    socket.bind(address(host, port), false);
    socket.set_blocking(false);
    return socket;
}

// Calls func() whenever @socket has something to read; returns the source
function watch(socket, func) {
    const source = socket.create_source(GLib.IOCondition.IN, null);
    source.set_callback(() => {
        func();
        return GLib.SOURCE_CONTINUE;
    });
    source.attach(null);
    return source;
}

// Resolves to the next datagram on @socket, as a string
function receiveDatagram(socket) {
    return new Promise(resolve => {
        const source = socket.create_source(GLib.IOCondition.IN, null);
        source.set_callback(() => {
            const [bytes] = Rndz.socket_receive_bytes(socket, 65536, null);
            resolve(decoder.decode(bytes.toArray()));
            return GLib.SOURCE_REMOVE;
        });
        source.attach(null);
    });
}

// The loopback NAT in front of the server: records what the relay port
// forwards, both ways, TCP and UDP
class Tap {
    constructor(port, relayPort) {
        this.relayPort = relayPort;
        this.relayed = [];      // Uint8Arrays, in order
        this.sources = [];
        this.sockets = [];
        this.connections = [];
        this.cancellable = new Gio.Cancellable();
        this.listener = new Gio.SocketListener();
        for (const p of [port, relayPort]) {
            this.forwardUdp(p);
            this.listener.add_address(address(TAP_HOST, p), Gio.SocketType.STREAM,
                Gio.SocketProtocol.TCP, null);
        }
        this.acceptLoop().catch(() => {});  // ends when closed
    }

    record(port, data) {
        if (port === this.relayPort)
            this.relayed.push(data);
    }

    // Everything the relay port forwarded, as a string (bytes as latin-1
    // characters, so that nothing is lost in decoding)
    relayedText() {
        return this.relayed.map(data => String.fromCharCode(...data)).join('');
    }

    forwardUdp(port) {
        const front = udpSocket(TAP_HOST, port);
        const server = address(SERVER_HOST, port);
        const mapped = new Map();   // client address -> socket towards the server
        this.sockets.push(front);

        this.sources.push(watch(front, () => {
            const [bytes, client] = Rndz.socket_receive_bytes(front, 65536, null);
            const key = client.to_string();
            if (!mapped.has(key)) {
                const back = udpSocket(SERVER_HOST, 0);
                mapped.set(key, back);
                this.sockets.push(back);
                this.sources.push(watch(back, () => {
                    const [answer, sender] = Rndz.socket_receive_bytes(back, 65536, null);
                    // Firewalled: only the server gets in
                    if (sender.to_string() !== server.to_string())
                        return;
                    this.record(port, answer.toArray());
                    front.send_to(client, answer.toArray(), null);
                }));
            }
            this.record(port, bytes.toArray());
            mapped.get(key).send_to(server, bytes.toArray(), null);
        }));
    }

    async acceptLoop() {
        for (;;) {
            // eslint-disable-next-line no-await-in-loop
            const [client] = await this.listener.accept_async(this.cancellable);
            const port = client.get_local_address().get_port();
            const server = Gio.SocketClient.new().connect(address(SERVER_HOST, port), null);
            this.connections.push(client, server);
            this.splice(client, server, port).catch(() => {});
            this.splice(server, client, port).catch(() => {});
        }
    }

    async splice(source, sink, port) {
        const input = source.get_input_stream();
        const output = sink.get_output_stream();
        for (;;) {
            // eslint-disable-next-line no-await-in-loop
            const bytes = await input.read_bytes_async(65536, GLib.PRIORITY_DEFAULT, this.cancellable);
            if (bytes.get_size() === 0)
                break;
            this.record(port, bytes.toArray());
            // Small amounts into loopback's large buffers: never blocks
            output.write_all(bytes.toArray(), null);
        }
        sink.close(null);
    }

    close() {
        this.cancellable.cancel();
        this.listener.close();
        for (const source of this.sources)
            source.destroy();
        for (const connection of this.connections) {
            try {
                connection.close(null);
            } catch (e) {}
        }
        for (const socket of this.sockets)
            socket.close();
    }
}

// Ports below the kernel's ephemeral range: nothing bound to port 0 takes
// them from under us
function relayPortCandidates() {
    const [, contents] = GLib.file_get_contents('/proc/sys/net/ipv4/ip_local_port_range');
    const low = Number(decoder.decode(contents).split(/\s+/)[0]);
    const first = low > 12000 ? 10000 : 1024;
    return Array.from({length: 64}, () => first + Math.floor(Math.random() * (low - first)));
}

// A server with a relay on 127.0.0.1, the tap, and the clients
class Rig {
    constructor() {
        this.server = Rndz.Server.new();
        this.server.forward_timeout = 1000;     // ms
        for (const port of relayPortCandidates()) {
            this.server.set_relay_port(port);
            try {
                this.server.listen(address(SERVER_HOST, 0));
                this.tap = new Tap(this.server.get_port(), port);
                break;
            } catch (e) {
                this.server.stop();
                if (!e.matches?.(Gio.IOErrorEnum, Gio.IOErrorEnum.ADDRESS_IN_USE))
                    throw e;
            }
        }
        assert(this.tap, 'no free relay port');
        this.clients = [];
    }

    client(id, secure) {
        const client = Rndz.Client.new(id, [`${TAP_HOST}:${this.server.get_port()}`]);
        client.timeout = 5000;  // ms
        client.direct_timeout = DIRECT_TIMEOUT_MS;
        client.set_local_address(address(CLIENT_HOST, 0));
        if (secure)
            client.identity = Rndz.Identity.new();
        this.clients.push(client);
        return client;
    }

    close() {
        for (const client of this.clients)
            client.stop();
        this.server.stop();
        this.tap?.close();
        drain();
    }
}

async function withRig(func) {
    const rig = new Rig();
    try {
        await func(rig);
    } finally {
        rig.close();
    }
}

// A message the relay's traffic cannot contain by chance
function marker() {
    return `plaintext marker ${GLib.uuid_string_random()}`;
}

function assertCarried(rig, messages, secure) {
    const relayed = rig.tap.relayedText();
    // The exchange went through the relay, the messages whole at least
    const total = messages.reduce((sum, message) => sum + message.length, 0);
    assert(relayed.length >= total, `${relayed.length} bytes through the relay`);
    for (const message of messages) {
        if (secure)
            assert(!relayed.includes(message), 'the relay carried the plaintext');
        else
            assert(relayed.includes(message), 'the tap did not see the relayed payload');
    }
}

function exchangeUdp(secure) {
    return withRig(async rig => {
        const listener = rig.client('js-listener', secure);
        const connector = rig.client('js-connector', secure);
        const peerSockets = [];
        listener.connect('peer-socket', (client, peerId, socket) => peerSockets.push(socket));
        const listening = await listener.listen_udp_async(null);

        const there = marker(), back = marker();
        if (secure) {
            const [connected, [accepted]] = await Promise.all([
                connector.connect_dtls_async('js-listener', null, null),
                listener.accept_dtls_async(null),
            ]);
            assertEqual(Rndz.socket_get_path(connected.get_socket()), Rndz.Path.RELAYED);
            connected.send_bytes(new GLib.Bytes(encoder.encode(there)), null);
            assertEqual(decoder.decode((await accepted.receive_bytes_async(null)).toArray()), there);
            accepted.send_bytes(new GLib.Bytes(encoder.encode(back)), null);
            assertEqual(decoder.decode((await connected.receive_bytes_async(null)).toArray()), back);
        } else {
            const connected = await connector.connect_udp_async('js-listener', null);
            assertEqual(Rndz.socket_get_path(connected), Rndz.Path.RELAYED);
            assertEqual(connected.send(encoder.encode(there), null), there.length);
            // The listener's socket for the peer comes with the first datagram
            while (peerSockets.length === 0)
                // eslint-disable-next-line no-await-in-loop
                await new Promise(resolve => GLib.timeout_add(GLib.PRIORITY_DEFAULT, 10, resolve));
            assertEqual(await receiveDatagram(peerSockets[0]), there);
            assertEqual(peerSockets[0].send(encoder.encode(back), null), back.length);
            assertEqual(await receiveDatagram(connected), back);
        }
        assertCarried(rig, [there, back], secure);
        listening.close();
    });
}

function exchangeTcp(secure) {
    return withRig(async rig => {
        const listener = rig.client('js-listener', secure);
        const connector = rig.client('js-connector', secure);
        assertEqual(await listener.listen_tcp_async(null), true);

        const [connected, [accepted]] = await Promise.all(secure ? [
            connector.connect_tls_async('js-listener', null, null),
            listener.accept_tls_async(null),
        ] : [
            connector.connect_tcp_async('js-listener', null),
            listener.accept_async(null),
        ]);
        const base = secure ? connected.base_io_stream : connected;
        assertEqual(Rndz.socket_get_path(base.get_socket()), Rndz.Path.RELAYED);

        const there = marker(), back = marker();
        const write = (connection, text) => connection.get_output_stream().write_bytes_async(
            new GLib.Bytes(encoder.encode(text)), GLib.PRIORITY_DEFAULT, null);
        const read = async (connection, size) => decoder.decode((await connection.get_input_stream()
            .read_bytes_async(size, GLib.PRIORITY_DEFAULT, null)).toArray());
        await write(connected, there);
        assertEqual(await read(accepted, there.length), there);
        await write(accepted, back);
        assertEqual(await read(connected, back.length), back);
        assertCarried(rig, [there, back], secure);
        connected.close(null);
        accepted.close(null);
    });
}

const tests = [
    {name: 'dtls-relayed', description: 'UDP: DTLS through the relay; the relay never carries the plaintext',
        func: () => exchangeUdp(true)},
    {name: 'udp-relayed-plain', description: 'UDP without DTLS: the relay carries the plaintext (the tap sees it)',
        func: () => exchangeUdp(false)},
    {name: 'tls-relayed', description: 'TCP: TLS through the relay; the relay never carries the plaintext',
        func: () => exchangeTcp(true)},
    {name: 'tcp-relayed-plain', description: 'TCP without TLS: the relay carries the plaintext (the tap sees it)',
        func: () => exchangeTcp(false)},
];

runTests(tests);
