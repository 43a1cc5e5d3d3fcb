// echo.js: an echo service that peers reach through a rendezvous server
//
// SPDX-License-Identifier: MIT
//
// The JavaScript (GJS) twin of echo.c, with the same commands:
//
//   gjs -m echo.js server [ADDRESS:PORT]
//       run a rendezvous server (default 0.0.0.0:8888)
//   gjs -m echo.js listen SERVER:PORT ID [OPTIONS]
//       register as ID and send back whatever peers send
//   gjs -m echo.js connect SERVER:PORT ID PEER [MESSAGE] [OPTIONS]
//       reach the peer PEER; send MESSAGE and print the echo, or, without
//       MESSAGE, send each line you type and print what comes back
//
// Options:
//   --tcp                   TCP instead of UDP
//   --insecure              a plain connection: no TLS or DTLS
//   --identity FILE         who we are: the key and certificate in FILE
//                           (created when missing); a fresh one otherwise
//   --peer-fingerprint FP   connect only to a peer with this fingerprint;
//                           listening, let in only the peer with it
//
// Connections are secure by default: TLS over TCP (the connection is a
// Gio.TlsConnection), DTLS over UDP (a Rndz.DtlsChannel). Each peer has an
// identity, a key and a certificate; its fingerprint travels with the
// rendezvous, and each side checks that the other has the key for it.
//
// rndz-glib is used through GObject introspection. Its calls are
// asynchronous; Gio._promisify() turns each *_async()/*_finish() pair into
// one method that returns a promise, so that the code reads top to bottom
// with await. Errors are thrown as GLib.Error. Everything runs in one
// GLib.MainLoop.
//
// Tell GJS where the library is if it is not installed:
//
//   GI_TYPELIB_PATH=_build/rndz-glib LD_LIBRARY_PATH=_build/rndz-glib \
//       gjs -m examples/echo.js listen 127.0.0.1:8888 alice

import GLib from 'gi://GLib?version=2.0';
import Gio from 'gi://Gio?version=2.0';
import Rndz from 'gi://Rndz?version=1.0';
import System from 'system';

for (const method of ['listen_udp', 'listen_tcp', 'accept', 'connect_udp', 'connect_tcp',
    'accept_tls', 'accept_dtls', 'connect_tls', 'connect_dtls'])
    Gio._promisify(Rndz.Client.prototype, `${method}_async`, `${method}_finish`);
Gio._promisify(Rndz.DtlsChannel.prototype, 'receive_bytes_async', 'receive_bytes_finish');
Gio._promisify(Gio.InputStream.prototype, 'read_bytes_async', 'read_bytes_finish');
Gio._promisify(Gio.OutputStream.prototype, 'write_bytes_async', 'write_bytes_finish');
Gio._promisify(Gio.DataInputStream.prototype, 'read_line_async', 'read_line_finish_utf8');

const loop = new GLib.MainLoop(null, false);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Datagrams
//
// With GLib older than 2.80, Gio.Socket.receive() and receive_from() cannot
// be called from JavaScript (their buffer argument is not introspectable):
// Rndz.socket_receive_bytes() returns the datagram as GLib.Bytes instead.
class Datagrams {
    constructor(socket) {
        this.socket = socket;
    }

    _readable() {
        return new Promise(resolve => {
            const source = this.socket.create_source(GLib.IOCondition.IN, null);
            source.set_callback(() => {
                resolve();
                return GLib.SOURCE_REMOVE;
            });
            source.attach(null);
        });
    }

    // Resolves to [data as a Uint8Array, the sender's Gio.SocketAddress]
    async receive() {
        await this._readable();
        const [bytes, sender] = Rndz.socket_receive_bytes(this.socket, 65536, null);
        return [bytes.toArray(), sender];
    }
}

// The fingerprint of the certificate the peer of a TLS connection showed
function fingerprintOf(connection) {
    return Rndz.fingerprint_from_certificate(connection.get_peer_certificate());
}

// The server

function runServer(addressText) {
    const colon = addressText.lastIndexOf(':');
    const host = addressText.slice(0, colon).replace(/^\[|\]$/g, '');
    const address = Gio.InetSocketAddress.new_from_string(host, Number(addressText.slice(colon + 1)));
    if (address === null)
        throw new Error(`"${addressText}" is not an IP address and a port`);

    const server = Rndz.Server.new();
    server.listen(address);
    server.connect('peer-registered', (_server, id, transport, peerAddress) => {
        const name = transport === Rndz.Transport.TCP ? 'TCP' : 'UDP';
        print(`Peer "${id}" registered over ${name} from ${peerAddress.to_string()}`);
    });
    print(`Serving on port ${server.get_port()}`);

    // Serve until Ctrl-C: a promise that never resolves
    return new Promise(() => {});
}

// The listener

async function echoConnection(connection) {
    const input = connection.get_input_stream();
    const output = connection.get_output_stream();

    for (;;) {
        const bytes = await input.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, null);
        if (bytes.get_size() === 0)
            break;  // the peer closed the connection
        print(`Echoing ${bytes.get_size()} bytes`);
        await output.write_bytes_async(bytes, GLib.PRIORITY_DEFAULT, null);
    }
    connection.close(null);
}

// DTLS: a Rndz.DtlsChannel per peer; each datagram goes back on it
async function echoChannel(channel) {
    for (;;) {
        const bytes = await channel.receive_bytes_async(null);
        print(`Echoing ${bytes.get_size()} bytes`);
        channel.send_bytes(bytes, null);
    }
}

async function runListener(client, tcp, secure) {
    client.connect('peer-request', (_client, peerId, address) => {
        // The peer is on its way: the library has already opened our NAT for it
        print(`Peer "${peerId}" at ${address.to_string()} is coming`);
    });

    const registered = transport => {
        print(`Registered as "${client.id}", listening on ${transport} port ${client.local_port}`);
        // What peers can pin (--peer-fingerprint) to be sure it is us
        if (secure)
            print(`Fingerprint: ${client.identity.get_fingerprint()}`);
    };

    if (tcp) {
        await client.listen_tcp_async(null);
        registered('TCP');

        // One connection per peer, each echoed until the peer closes it.
        // Secure: a Gio.TlsConnection (a Gio.IOStream too), let in only
        // once the peer proved the identity it announced.
        for (;;) {
            let connection, peerId;
            if (secure) {
                [connection, peerId] = await client.accept_tls_async(null);
                print(`Peer "${peerId}" connected, fingerprint ${fingerprintOf(connection)}`);
            } else {
                [connection, peerId] = await client.accept_async(null);
                print(`Peer "${peerId}" connected`);
            }
            echoConnection(connection).catch(e => printerr(`Connection failed: ${e.message}`));
        }
    } else if (secure) {
        await client.listen_udp_async(null);
        registered('UDP');
        for (;;) {
            const [channel, peerId] = await client.accept_dtls_async(null);
            print(`Peer "${peerId}" connected, fingerprint ${channel.get_peer_fingerprint()}`);
            echoChannel(channel).catch(e => print(`Peer "${peerId}" is gone: ${e.message}`));
        }
    } else {
        // A peer that came through the rendezvous, on a socket of its own
        // (directly, through the server's relay, or through our NAT's port
        // for it alone). Only its datagrams come on that socket, and never
        // a message of the rendezvous protocol: they are echoed.
        client.connect('peer-socket', (_client, peerId, peerSocket) => {
            const relayed = Rndz.socket_get_path(peerSocket) === Rndz.Path.RELAYED;
            print(`Peer "${peerId}" comes in (${relayed ? 'relayed' : 'direct'})`);
            echoDatagrams(peerSocket).catch(e => printerr(`Peer socket failed: ${e.message}`));
        });

        // The socket holds the port; each peer comes on a socket of its own
        // (above). What arrives on it is from senders that did not come
        // through the rendezvous: not answered, or we would echo anything
        // to anyone, forged sources included.
        await client.listen_udp_async(null);
        registered('UDP');
        await new Promise(() => {});    // until SIGINT or SIGTERM
    }
}

// Every datagram goes back where it came from
async function echoDatagrams(socket) {
    const datagrams = new Datagrams(socket);
    for (;;) {
        const [data, sender] = await datagrams.receive();
        print(`Echoing ${data.length} bytes`);
        socket.send_to(sender, data, null);
    }
}

// The connector

function gotReply(data) {
    const text = decoder.decode(data);
    // Chat lines end with a newline already; a one-off MESSAGE does not
    print(text.endsWith('\n') ? text.slice(0, -1) : text);
}

function timeout(seconds, message) {
    return new Promise((resolve, reject) => {
        GLib.timeout_add_seconds(GLib.PRIORITY_DEFAULT, seconds, () => {
            reject(new Error(message));
            return GLib.SOURCE_REMOVE;
        });
    });
}

async function runConnector(client, peerId, message, {tcp, secure, pin}) {
    // Both transports, plain or secure, behind two functions: send(data)
    // and receive(). The peer's fingerprint goes to standard error:
    // standard output is for what the peer sends.
    let send, receive;
    if (tcp) {
        let connection;
        if (secure) {
            // Rndz.Error.IDENTITY_MISMATCH: not the peer --peer-fingerprint names
            connection = await client.connect_tls_async(peerId, pin, null);
            printerr(`Connected to "${peerId}", fingerprint ${fingerprintOf(connection)}`);
        } else {
            connection = await client.connect_tcp_async(peerId, null);
        }
        const input = connection.get_input_stream();
        const output = connection.get_output_stream();
        send = data => output.write_bytes_async(new GLib.Bytes(data), GLib.PRIORITY_DEFAULT, null);
        receive = async () => {
            const bytes = await input.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, null);
            if (bytes.get_size() === 0)
                throw new Error('The peer closed the connection');
            return bytes.toArray();
        };
    } else if (secure) {
        const channel = await client.connect_dtls_async(peerId, pin, null);
        printerr(`Connected to "${peerId}", fingerprint ${channel.get_peer_fingerprint()}`);
        send = async data => channel.send_bytes(new GLib.Bytes(data), null);
        receive = async () => (await channel.receive_bytes_async(null)).toArray();
    } else {
        // The socket is connected to the peer: send() needs no address
        const socket = await client.connect_udp_async(peerId, null);
        const datagrams = new Datagrams(socket);
        send = async data => socket.send(data, null);
        receive = async () => (await datagrams.receive())[0];
    }

    if (message !== null) {
        await send(encoder.encode(message));
        // UDP may lose the message or its echo: do not wait forever
        gotReply(await Promise.race([receive(), timeout(10, 'No reply')]));
        return;
    }

    // Chat: print whatever comes back, send each line typed
    (async () => {
        for (;;)
            gotReply(await receive());
    })().catch(e => {
        printerr(e.message);
        loop.quit();
    });

    const lines = Gio.DataInputStream.new(new Gio.UnixInputStream({fd: 0, close_fd: false}));
    print('Connected: type lines to send, Ctrl-D to quit');
    for (;;) {
        const [line] = await lines.read_line_async(GLib.PRIORITY_DEFAULT, null);
        if (line === null)
            break;  // end of input
        await send(encoder.encode(`${line}\n`));
    }
    // Give the last echo a moment
    await new Promise(resolve => GLib.timeout_add(GLib.PRIORITY_DEFAULT, 500, () => resolve()));
}

const USAGE = `Usage: gjs -m echo.js server [ADDRESS:PORT]
       gjs -m echo.js listen SERVER:PORT ID [OPTIONS]
       gjs -m echo.js connect SERVER:PORT ID PEER [MESSAGE] [OPTIONS]
Options: --tcp --insecure --identity FILE --peer-fingerprint FP`;

// Positional arguments, and the options
function parseOptions(argv) {
    const args = [];
    const options = {tcp: false, secure: true, identity: null, pin: null};
    for (let i = 0; i < argv.length; i++) {
        const valued = ['--identity', '--peer-fingerprint'].includes(argv[i]);
        if (valued && i + 1 === argv.length)
            throw new Error(USAGE);
        if (argv[i] === '--tcp')
            options.tcp = true;
        else if (argv[i] === '--insecure')
            options.secure = false;
        else if (argv[i] === '--identity')
            options.identity = argv[++i];
        else if (argv[i] === '--peer-fingerprint')
            options.pin = Rndz.fingerprint_normalize(argv[++i]);
        else
            args.push(argv[i]);
    }
    return [args, options];
}

function newClient(id, server, options) {
    // The client's sockets and timers belong to this thread's main context
    const client = Rndz.Client.new(id, [server]);
    if (options.secure) {
        // A fresh identity in memory, without a file: nobody can pin it from
        // one run to the next
        client.identity = options.identity !== null
            ? Rndz.Identity.new_from_file(options.identity) : Rndz.Identity.new();
    }
    return client;
}

function main(argv) {
    const [args, options] = parseOptions(argv);
    const [command, server, id, peerId, message = null] = args;

    if (command === 'server' && args.length <= 2)
        return runServer(server ?? '0.0.0.0:8888');
    if (command === 'listen' && args.length === 3) {
        const client = newClient(id, server, options);
        // Others get no answer at all
        if (options.pin !== null)
            client.allowed_fingerprints = [options.pin];
        return runListener(client, options.tcp, options.secure);
    }
    if (command === 'connect' && (args.length === 4 || args.length === 5))
        return runConnector(newClient(id, server, options), peerId, message, options);

    printerr(USAGE);
    return Promise.reject(null);
}

let status = 0;
for (const signum of [2, 15]) {    // SIGINT, SIGTERM
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, () => {
        loop.quit();
        return GLib.SOURCE_CONTINUE;
    });
}

Promise.resolve().then(() => main(ARGV)).catch(e => {
    // For example Rndz.Error.PEER_NOT_FOUND: no server knows the peer
    if (e !== null)
        printerr(e.message);
    status = 1;
}).finally(() => loop.quit());

loop.run();
System.exit(status);
