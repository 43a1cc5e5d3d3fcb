// test-secure.js: secure connections (TLS, DTLS) from JavaScript (GJS)
//
// SPDX-License-Identifier: MIT
//
// Identities (in memory and in a file), and a listener and a connector
// that reach each other through a loopback server with connect_tls() /
// accept_tls() over TCP and connect_dtls() / accept_dtls() over UDP: data
// both ways, each side sees the other's fingerprint, a wrong pin fails
// with Rndz.Error.IDENTITY_MISMATCH. The async calls are promises
// (Gio._promisify()); errors are thrown as GLib.Error.
//
// Prints TAP. Run as an ES module: gjs -m test-secure.js, with
// GI_TYPELIB_PATH and LD_LIBRARY_PATH pointing at the build tree
// (tests/introspection/meson.build sets them).

import GLib from 'gi://GLib?version=2.0';
import GObject from 'gi://GObject?version=2.0';
import Gio from 'gi://Gio?version=2.0';
import Rndz from 'gi://Rndz?version=1.0';
import {
    assert, assertEqual, assertError, nextSignal, rejection, runTests, sleep,
    withFixture,
} from './rndz-gi-test.js';

// How long a peer whose handshake failed has to (wrongly) come out of accept
const QUIET_MS = 300;

for (const method of ['listen_udp', 'listen_tcp', 'accept_tls', 'accept_dtls', 'connect_tls', 'connect_dtls'])
    Gio._promisify(Rndz.Client.prototype, `${method}_async`, `${method}_finish`);
Gio._promisify(Rndz.DtlsChannel.prototype, 'receive_bytes_async', 'receive_bytes_finish');
Gio._promisify(Gio.InputStream.prototype, 'read_bytes_async', 'read_bytes_finish');
Gio._promisify(Gio.OutputStream.prototype, 'write_bytes_async', 'write_bytes_finish');

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// The fingerprint of the certificate the peer of a TLS connection showed
function fingerprintOf(connection) {
    return Rndz.fingerprint_from_certificate(connection.get_peer_certificate());
}

async function write(connection, text) {
    const written = await connection.get_output_stream().write_bytes_async(
        new GLib.Bytes(encoder.encode(text)), GLib.PRIORITY_DEFAULT, null);
    assertEqual(written, text.length);
}

async function read(connection, size) {
    const bytes = await connection.get_input_stream().read_bytes_async(size, GLib.PRIORITY_DEFAULT, null);
    return decoder.decode(bytes.toArray());
}

async function receive(channel) {
    return decoder.decode((await channel.receive_bytes_async(null)).toArray());
}

function send(channel, text) {
    assert(channel.send_bytes(new GLib.Bytes(encoder.encode(text)), null));
}

// A listener over TCP or UDP, registered, with @identity if not null
async function listening(fixture, tcp, identity = null) {
    const client = fixture.client('js-listener');
    if (identity !== null)
        client.identity = identity;
    if (tcp)
        assertEqual(await client.listen_tcp_async(null), true);
    else
        assert(await client.listen_udp_async(null) instanceof Gio.Socket);
    return client;
}

function accept(listener, tcp, cancellable = null) {
    return tcp ? listener.accept_tls_async(cancellable) : listener.accept_dtls_async(cancellable);
}

function connectSecure(connector, tcp, pin) {
    return tcp ? connector.connect_tls_async('js-listener', pin, null)
        : connector.connect_dtls_async('js-listener', pin, null);
}

// A fingerprint as people write it: upper case, colons between bytes
function spelled(fingerprint) {
    return fingerprint.match(/../g).join(':').toUpperCase();
}

// Tests

const tests = [];

function test(name, description, func) {
    tests.push({name, description, func});
}

test('identity-types', 'The typelib has the identity, the channel and the new error codes', () => {
    assert(Rndz.Identity.prototype instanceof GObject.Object);
    assert(Rndz.DtlsChannel.prototype instanceof GObject.Object);
    assert(GObject.type_is_a(Rndz.DtlsChannel.$gtype, Gio.DatagramBased.$gtype));
    for (const name of ['IDENTITY_MISMATCH', 'HANDSHAKE_FAILED', 'PATH_DEAD', 'NOT_SECURE'])
        assertEqual(typeof Rndz.Error[name], 'number');
});

test('identity-in-memory', 'A fresh identity has a certificate and one fingerprint text form', () => {
    const identity = Rndz.Identity.new();
    const fingerprint = identity.get_fingerprint();
    assert(/^[0-9a-f]{64}$/.test(fingerprint), fingerprint);
    const certificate = identity.get_certificate();
    assert(certificate instanceof Gio.TlsCertificate);
    assertEqual(Rndz.fingerprint_from_certificate(certificate), fingerprint);
    assert(Rndz.Identity.new().get_fingerprint() !== fingerprint);

    // Colons and upper case are the same fingerprint; anything else is not one
    assertEqual(Rndz.fingerprint_normalize(spelled(fingerprint)), fingerprint);
    for (const wrong of ['not hex', fingerprint.slice(0, -2), `${fingerprint}00`]) {
        let error = null;
        try {
            Rndz.fingerprint_normalize(wrong);
        } catch (e) {
            error = e;
        }
        assert(error instanceof GLib.Error, `fingerprint_normalize() accepted ${wrong}`);
    }
});

test('identity-file', 'new_from_file() creates a 0600 file and loads it back as the same identity', () => {
    const directory = GLib.dir_make_tmp('rndz-test-secure-XXXXXX');
    const path = GLib.build_filenamev([directory, 'identity.pem']);
    const garbage = GLib.build_filenamev([directory, 'garbage.pem']);
    try {
        const created = Rndz.Identity.new_from_file(path);
        const info = Gio.File.new_for_path(path).query_info('unix::mode', Gio.FileQueryInfoFlags.NONE, null);
        assertEqual((info.get_attribute_uint32('unix::mode') & 0o777).toString(8), '600');
        const [, contents] = GLib.file_get_contents(path);
        assert(decoder.decode(contents).includes('PRIVATE KEY'));

        const loaded = Rndz.Identity.new_from_file(path);
        assertEqual(loaded.get_fingerprint(), created.get_fingerprint());

        // A file that is not an identity is an error, and stays as it was
        GLib.file_set_contents(garbage, 'not a key\n');
        let error = null;
        try {
            Rndz.Identity.new_from_file(garbage);
        } catch (e) {
            error = e;
        }
        assert(error instanceof GLib.Error, 'new_from_file() loaded garbage');
        assertEqual(decoder.decode(GLib.file_get_contents(garbage)[1]), 'not a key\n');
    } finally {
        GLib.unlink(path);
        GLib.unlink(garbage);
        GLib.rmdir(directory);
    }
});

test('tls', 'TCP: connect_tls() and accept_tls(), both fingerprints, streams both ways', () => withFixture(async fixture => {
    const identity = Rndz.Identity.new();
    const listener = await listening(fixture, true, identity);
    const connector = fixture.client('js-connector');
    const notified = [];
    connector.connect('notify::identity', (object, pspec) => notified.push(pspec.name));
    assertEqual(connector.identity, null);

    // The connector pins the listener; it has no identity of its own yet:
    // the secure call makes one
    const [connected, [accepted, peerId]] = await Promise.all([
        connectSecure(connector, true, identity.get_fingerprint()),
        accept(listener, true),
    ]);
    try {
        assert(connected instanceof Gio.TlsConnection);
        assert(accepted instanceof Gio.TlsConnection);
        assertEqual(peerId, 'js-connector');
        assertEqual(notified.join(), 'identity');
        assert(connector.identity instanceof Rndz.Identity);

        assertEqual(fingerprintOf(connected), identity.get_fingerprint());
        assertEqual(fingerprintOf(accepted), connector.get_identity().get_fingerprint());
        assertEqual(connected.get_protocol_version(), Gio.TlsProtocolVersion.TLS_1_3);

        await write(connected, 'ping!');
        assertEqual(await read(accepted, 5), 'ping!');
        await write(accepted, 'pong!');
        assertEqual(await read(connected, 5), 'pong!');

        connected.close(null);
        assertEqual(await read(accepted, 5), '');
    } finally {
        connected.close(null);
        accepted.close(null);
    }
}));

test('dtls', 'UDP: connect_dtls() and accept_dtls(), both fingerprints, datagrams both ways', () => withFixture(async fixture => {
    const listenerIdentity = Rndz.Identity.new();
    const connectorIdentity = Rndz.Identity.new();
    const listener = await listening(fixture, false, listenerIdentity);
    const connector = fixture.client('js-connector');
    connector.set_identity(connectorIdentity);

    // No pin: the listener's fingerprint comes from the rendezvous
    const [connected, [accepted, peerId]] = await Promise.all([
        connectSecure(connector, false, null),
        accept(listener, false),
    ]);
    assert(connected instanceof Rndz.DtlsChannel);
    assert(accepted instanceof Rndz.DtlsChannel);
    assertEqual(peerId, 'js-connector');
    assertEqual(connected.get_peer_fingerprint(), listenerIdentity.get_fingerprint());
    assertEqual(accepted.get_peer_fingerprint(), connectorIdentity.get_fingerprint());
    assertEqual(connected.peer_fingerprint, listenerIdentity.get_fingerprint());

    send(connected, 'hello');
    assertEqual(await receive(accepted), 'hello');
    const big = 'x'.repeat(1000);
    send(accepted, big);
    assertEqual(await receive(connected), big);

    // Closing says so, on this side and on the other
    const closedHere = nextSignal(connected, 'closed');
    const closedThere = nextSignal(accepted, 'closed');
    connected.close();
    assert(connected.is_closed());
    const [reason] = await closedHere;
    assertEqual(reason, null);
    await closedThere;
    let error = null;
    try {
        send(connected, 'too late');
    } catch (e) {
        error = e;
    }
    assert(error instanceof GLib.Error, 'send_bytes() on a closed channel succeeded');
}));

test('dtls-path-dead', "UDP: a peer gone without a word: 'closed' with PATH_DEAD, as a GLib.Error", () => withFixture(async fixture => {
    const listener = await listening(fixture, false, Rndz.Identity.new());
    const connector = fixture.client('js-connector');
    const [connected, [accepted]] = await Promise.all([
        connectSecure(connector, false, null),
        accept(listener, false),
    ]);
    connected.keepalive_interval = 100;     // ms: dead after 3 silent ones
    assertEqual(connected.get_keepalive_interval(), 100);

    const closed = nextSignal(connected, 'closed');
    // The listener's end vanishes: no close_notify, nothing more from it
    accepted.get_socket().close();
    const started = GLib.get_monotonic_time();
    const [reason] = await closed;
    const elapsedMs = (GLib.get_monotonic_time() - started) / 1000;
    assertError(reason, Rndz.Error, Rndz.Error.PATH_DEAD);
    assert(connected.is_closed());
    assert(elapsedMs < 2000, `${elapsedMs} ms to find the path dead`);
}));

function wrongPin(tcp) {
    return withFixture(async fixture => {
        const listener = await listening(fixture, tcp, Rndz.Identity.new());
        const connector = fixture.client('js-connector');
        const someoneElse = Rndz.Identity.new().get_fingerprint();

        // The listener waits for a peer that completed its handshake
        const cancellable = new Gio.Cancellable();
        let accepted = null;
        const acceptance = accept(listener, tcp, cancellable).then(
            value => (accepted = value), e => (accepted = e));

        const error = await rejection(connectSecure(connector, tcp, someoneElse));
        assertError(error, Rndz.Error, Rndz.Error.IDENTITY_MISMATCH);

        // The connector gave up: nothing comes out of accept
        await sleep(QUIET_MS);
        assertEqual(accepted, null);
        cancellable.cancel();
        await acceptance;
        assertError(accepted, Gio.IOErrorEnum, Gio.IOErrorEnum.CANCELLED);
    });
}

test('tls-wrong-pin', "TCP: a pin that is not the listener's fails with IDENTITY_MISMATCH", () => wrongPin(true));
test('dtls-wrong-pin', "UDP: a pin that is not the listener's fails with IDENTITY_MISMATCH", () => wrongPin(false));

function listenerPins(tcp) {
    return withFixture(async fixture => {
        const listener = await listening(fixture, tcp, Rndz.Identity.new());
        const names = ['friend', 'stranger', 'refused'];
        const connectors = {}, fingerprints = {};
        for (const name of names) {
            connectors[name] = fixture.client(`js-${name}`);
            connectors[name].identity = Rndz.Identity.new();
            fingerprints[name] = connectors[name].identity.get_fingerprint();
        }

        // Pins: an array of strings, in any spelling, read back in the one form
        listener.allowed_fingerprints = [spelled(fingerprints.friend), fingerprints.refused];
        assertEqual(listener.get_allowed_fingerprints().join(),
            [fingerprints.friend, fingerprints.refused].join());

        // A handler that returns a boolean decides too
        const asked = [];
        listener.connect('authorize-fingerprint', (client, peerId, fingerprint) => {
            asked.push(`${peerId} ${fingerprint}`);
            return peerId !== 'js-refused';
        });

        const [friend, stranger, refused, accepted] = await Promise.allSettled([
            ...names.map(name => connectSecure(connectors[name], tcp, null)),
            accept(listener, tcp),
        ]);
        assertEqual(friend.status, 'fulfilled');
        assert(friend.value instanceof (tcp ? Gio.TlsConnection : Rndz.DtlsChannel));
        assertEqual(accepted.status, 'fulfilled');
        assertEqual(accepted.value[1], 'js-friend');
        assertError(stranger.reason, Rndz.Error, Rndz.Error.PEER_NO_ANSWER);
        assertError(refused.reason, Rndz.Error, Rndz.Error.PEER_NO_ANSWER);
        assert(asked.includes(`js-friend ${fingerprints.friend}`), asked.join());
        assert(asked.includes(`js-refused ${fingerprints.refused}`), asked.join());
        if (tcp)
            friend.value.close(null);
        else
            friend.value.close();
    });
}

test('tls-listener-pins', 'TCP: allowed-fingerprints and authorize-fingerprint let in only the friend', () => listenerPins(true));
test('dtls-listener-pins', 'UDP: allowed-fingerprints and authorize-fingerprint let in only the friend', () => listenerPins(false));

test('not-secure', 'A listener without an identity: a secure connect fails with NOT_SECURE', () => withFixture(async fixture => {
    const listener = fixture.client('js-listener');
    const socket = await listener.listen_udp_async(null);
    const connector = fixture.client('js-connector');
    const error = await rejection(connector.connect_dtls_async('js-listener', null, null));
    assertError(error, Rndz.Error, Rndz.Error.NOT_SECURE);
    socket.close();
}));

runTests(tests);
