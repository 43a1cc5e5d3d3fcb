#!/usr/bin/python3
# echo.py: an echo service that peers reach through a rendezvous server
#
# SPDX-License-Identifier: MIT
#
# The Python twin of echo.c, with the same commands:
#
#   echo.py server [ADDRESS:PORT]
#       run a rendezvous server (default 0.0.0.0:8888)
#   echo.py listen SERVER:PORT ID [OPTIONS]
#       register as ID and send back whatever peers send
#   echo.py connect SERVER:PORT ID PEER [MESSAGE] [OPTIONS]
#       reach the peer PEER; send MESSAGE and print the echo, or, without
#       MESSAGE, send each line you type and print what comes back
#
# Options:
#   --tcp                   TCP instead of UDP
#   --insecure              a plain connection: no TLS or DTLS
#   --identity FILE         who we are: the key and certificate in FILE
#                           (created when missing); a fresh one otherwise
#   --peer-fingerprint FP   connect only to a peer with this fingerprint;
#                           listening, let in only the peer with it
#
# Connections are secure by default: TLS over TCP (the connection is a
# Gio.TlsConnection), DTLS over UDP (a Rndz.DtlsChannel). Each peer has an
# identity, a key and a certificate; its fingerprint travels with the
# rendezvous, and each side checks that the other has the key for it.
#
# rndz-glib is used through GObject introspection (PyGObject). Its calls are
# asynchronous: each *_async() method takes a callback, which calls the
# matching *_finish() to get the result, or the error as a GLib.Error
# exception. Everything runs in one GLib.MainLoop.
#
# Run it with the Python that has PyGObject (Debian: python3-gi), and tell
# it where the library is if it is not installed:
#
#   GI_TYPELIB_PATH=_build/rndz-glib LD_LIBRARY_PATH=_build/rndz-glib \
#       /usr/bin/python3 examples/echo.py listen 127.0.0.1:8888 alice

import signal
import sys

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Rndz', '1.0')

from gi.repository import GLib, Gio, Rndz  # noqa: E402

loop = GLib.MainLoop()
status = 0


def fingerprint_of(connection):
    """The fingerprint of the certificate the peer of a TLS connection showed."""
    return Rndz.fingerprint_from_certificate(connection.get_peer_certificate())


def quit(exit_status):
    global status
    status = exit_status
    loop.quit()


def receive(gsocket):
    """Reads one datagram from a Gio.Socket: returns (bytes, sender).

    With GLib older than 2.80, Gio.Socket.receive() and receive_from()
    cannot be called from Python (their buffer argument is not
    introspectable); Rndz.socket_receive_bytes() returns a GLib.Bytes.
    """
    data, sender = Rndz.socket_receive_bytes(gsocket, 65536, None)
    return data.get_data(), sender


def watch(gsocket, func):
    """Calls func() whenever gsocket has something to read."""
    source = gsocket.create_source(GLib.IOCondition.IN, None)
    # Socket sources call back with (socket, condition); PyGObject passes
    # only the user data to the callback.
    source.set_callback(lambda *args: func() or GLib.SOURCE_CONTINUE)
    # The main context keeps an attached source alive
    source.attach(None)


# The server

def run_server(address_text):
    host, _, port = address_text.rpartition(':')
    address = Gio.InetSocketAddress.new_from_string(host.strip('[]'), int(port))
    if address is None:
        sys.exit(f'"{address_text}" is not an IP address and a port')

    server = Rndz.Server.new()
    try:
        server.listen(address)
    except GLib.Error as e:
        sys.exit(f'Cannot serve on {address_text}: {e.message}')

    def on_peer_registered(server, id, transport, address):
        print(f'Peer "{id}" registered over {transport.value_nick.upper()} '
              f'from {address.to_string()}', flush=True)

    server.connect('peer-registered', on_peer_registered)
    print(f'Serving on port {server.get_port()}', flush=True)
    loop.run()


# The listener

def run_listener(client, tcp, secure):
    def registered(transport):
        print(f'Registered as "{client.props.id}", listening on {transport} port '
              f'{client.props.local_port}', flush=True)
        if secure:
            # What peers can pin (--peer-fingerprint) to be sure it is us
            print(f'Fingerprint: {client.props.identity.get_fingerprint()}', flush=True)

    def on_peer_request(client, peer_id, address):
        # The peer is on its way: the library has already opened our NAT for it
        print(f'Peer "{peer_id}" at {address.to_string()} is coming', flush=True)

    # UDP: every datagram goes back where it came from
    def echo_datagrams(gsocket):
        def echo():
            data, sender = receive(gsocket)
            print(f'Echoing {len(data)} bytes', flush=True)
            gsocket.send_to(sender, data, None)

        # The source keeps the socket
        watch(gsocket, echo)

    def on_listening_udp(client, result):
        try:
            gsocket = client.listen_udp_finish(result)
        except GLib.Error as e:
            print(f'Cannot register: {e.message}', file=sys.stderr)
            quit(1)
            return

        registered('UDP')
        if secure:
            client.accept_dtls_async(None, on_accepted_dtls)
        # gsocket holds the port; each peer comes on a socket of its own
        # (on_peer_socket). What arrives on gsocket is from senders that
        # did not come through the rendezvous: not answered, or we would
        # echo anything to anyone, forged sources included.

    # TCP: one connection per peer, each echoed until the peer closes it
    def echo_connection(connection):
        def on_read(stream, result):
            data = stream.read_bytes_finish(result).get_data()
            if not data:
                connection.close(None)
                return
            print(f'Echoing {len(data)} bytes', flush=True)
            connection.get_output_stream().write_all(data, None)
            stream.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, None, on_read)

        connection.get_input_stream().read_bytes_async(4096, GLib.PRIORITY_DEFAULT, None, on_read)

    def on_accepted(client, result):
        try:
            connection, peer_id = client.accept_finish(result)
        except GLib.Error as e:
            print(f'Cannot accept: {e.message}', file=sys.stderr)
            quit(1)
            return

        print(f'Peer "{peer_id}" connected', flush=True)
        echo_connection(connection)
        # And wait for the next one
        client.accept_async(None, on_accepted)

    # TLS: the same, over a Gio.TlsConnection (a Gio.IOStream too). The
    # library let the peer in only once it proved the identity it announced.
    def on_accepted_tls(client, result):
        try:
            connection, peer_id = client.accept_tls_finish(result)
        except GLib.Error as e:
            print(f'Cannot accept: {e.message}', file=sys.stderr)
            quit(1)
            return

        print(f'Peer "{peer_id}" connected, fingerprint {fingerprint_of(connection)}',
              flush=True)
        echo_connection(connection)
        client.accept_tls_async(None, on_accepted_tls)

    # DTLS: a Rndz.DtlsChannel per peer; each datagram goes back on it
    def echo_channel(channel, peer_id):
        def on_received(channel, result):
            try:
                data = channel.receive_bytes_finish(result)
            except GLib.Error as e:
                print(f'Peer "{peer_id}" is gone: {e.message}', flush=True)
                return
            print(f'Echoing {data.get_size()} bytes', flush=True)
            channel.send_bytes(data, None)
            channel.receive_bytes_async(None, on_received)

        channel.receive_bytes_async(None, on_received)

    def on_accepted_dtls(client, result):
        try:
            channel, peer_id = client.accept_dtls_finish(result)
        except GLib.Error as e:
            print(f'Cannot accept: {e.message}', file=sys.stderr)
            quit(1)
            return

        print(f'Peer "{peer_id}" connected, fingerprint {channel.get_peer_fingerprint()}',
              flush=True)
        echo_channel(channel, peer_id)
        client.accept_dtls_async(None, on_accepted_dtls)

    def on_listening_tcp(client, result):
        try:
            client.listen_tcp_finish(result)
        except GLib.Error as e:
            print(f'Cannot register: {e.message}', file=sys.stderr)
            quit(1)
            return

        registered('TCP')
        if secure:
            client.accept_tls_async(None, on_accepted_tls)
        else:
            client.accept_async(None, on_accepted)

    # UDP: a peer that came through the rendezvous, on a socket of its own
    # (directly, through the server's relay, or through our NAT's port for
    # it alone). Only its datagrams come on that socket, and never a
    # message of the rendezvous protocol: they are echoed.
    def on_peer_socket(client, peer_id, gsocket):
        relayed = Rndz.socket_get_path(gsocket) == Rndz.Path.RELAYED
        print(f'Peer "{peer_id}" comes in '
              f'({"relayed" if relayed else "direct"})', flush=True)
        echo_datagrams(gsocket)

    client.connect('peer-request', on_peer_request)
    if not secure:
        client.connect('peer-socket', on_peer_socket)
    if tcp:
        client.listen_tcp_async(None, on_listening_tcp)
    else:
        client.listen_udp_async(None, on_listening_udp)
    loop.run()
    # Tell the servers we are gone
    client.stop()


# The connector

def run_connector(client, peer_id, message, tcp, secure, pin):
    def got_reply(data):
        text = data.decode(errors='replace')
        # Chat lines end with a newline already; a one-off MESSAGE does not
        print(text, end='' if text.endswith('\n') else '\n', flush=True)
        if message is not None:
            quit(0)

    def start_talking(send):
        if message is not None:
            send(message.encode())

            # UDP may lose the message or its echo: do not wait forever
            def on_no_reply():
                print('No reply', file=sys.stderr)
                quit(1)

            GLib.timeout_add_seconds(10, on_no_reply)
            return

        # Chat: each line typed on standard input goes to the peer
        lines = Gio.DataInputStream.new(Gio.UnixInputStream.new(0, False))

        def on_line(stream, result):
            line, _ = stream.read_line_finish_utf8(result)
            if line is None:    # end of input: give the last echo a moment
                GLib.timeout_add(500, quit, 0)
                return
            send((line + '\n').encode())
            stream.read_line_async(GLib.PRIORITY_DEFAULT, None, on_line)

        print('Connected: type lines to send, Ctrl-D to quit', flush=True)
        lines.read_line_async(GLib.PRIORITY_DEFAULT, None, on_line)

    def on_connected_udp(client, result):
        try:
            gsocket = client.connect_udp_finish(result)
        except GLib.Error as e:
            # For example Rndz.Error.PEER_NOT_FOUND: no server knows the peer
            print(f'Cannot reach the peer: {e.message}', file=sys.stderr)
            quit(1)
            return

        # The socket is connected to the peer: send() needs no address
        watch(gsocket, lambda: got_reply(receive(gsocket)[0]))
        start_talking(lambda data: gsocket.send(data, None))

    def on_connected_dtls(client, result):
        try:
            channel = client.connect_dtls_finish(result)
        except GLib.Error as e:
            # Rndz.Error.IDENTITY_MISMATCH: not the peer --peer-fingerprint names
            print(f'Cannot reach the peer: {e.message}', file=sys.stderr)
            quit(1)
            return

        # On standard error: standard output is for what the peer sends
        print(f'Connected to "{peer_id}", fingerprint {channel.get_peer_fingerprint()}',
              file=sys.stderr, flush=True)

        def on_received(channel, result):
            try:
                data = channel.receive_bytes_finish(result)
            except GLib.Error as e:
                print(f'The peer is gone: {e.message}', file=sys.stderr)
                quit(1 if message is not None else 0)
                return
            got_reply(data.get_data())
            channel.receive_bytes_async(None, on_received)

        channel.receive_bytes_async(None, on_received)
        start_talking(lambda data: channel.send_bytes(GLib.Bytes.new(data), None))

    def on_connected_tcp(client, result):
        try:
            if secure:
                connection = client.connect_tls_finish(result)
            else:
                connection = client.connect_tcp_finish(result)
        except GLib.Error as e:
            print(f'Cannot reach the peer: {e.message}', file=sys.stderr)
            quit(1)
            return

        if secure:
            print(f'Connected to "{peer_id}", fingerprint {fingerprint_of(connection)}',
                  file=sys.stderr, flush=True)

        def on_read(stream, result):
            data = stream.read_bytes_finish(result).get_data()
            if not data:
                print('The peer closed the connection')
                quit(1 if message is not None else 0)
                return
            got_reply(data)
            stream.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, None, on_read)

        connection.get_input_stream().read_bytes_async(4096, GLib.PRIORITY_DEFAULT, None, on_read)
        start_talking(lambda data: connection.get_output_stream().write_all(data, None))

    if tcp and secure:
        client.connect_tls_async(peer_id, pin, None, on_connected_tcp)
    elif tcp:
        client.connect_tcp_async(peer_id, None, on_connected_tcp)
    elif secure:
        client.connect_dtls_async(peer_id, pin, None, on_connected_dtls)
    else:
        client.connect_udp_async(peer_id, None, on_connected_udp)
    loop.run()


def usage():
    sys.exit('Usage: echo.py server [ADDRESS:PORT]\n'
             '       echo.py listen SERVER:PORT ID [OPTIONS]\n'
             '       echo.py connect SERVER:PORT ID PEER [MESSAGE] [OPTIONS]\n'
             'Options: --tcp --insecure --identity FILE --peer-fingerprint FP')


def parse_options(argv):
    """Splits argv into positional arguments and a dict of options."""
    flags = {'--tcp', '--insecure'}
    valued = {'--identity', '--peer-fingerprint'}
    args, options = [], {}
    it = iter(argv)
    for arg in it:
        if arg in flags:
            options[arg] = True
        elif arg in valued:
            options[arg] = next(it, None)
            if options[arg] is None:
                usage()
        else:
            args.append(arg)
    return args, options


def new_client(id, server, options):
    # The client's sockets and timers belong to this thread's main context
    client = Rndz.Client.new(id, [server])
    if '--insecure' in options:
        return client
    try:
        if '--identity' in options:
            identity = Rndz.Identity.new_from_file(options['--identity'])
        else:
            # A fresh one in memory: nobody can pin it from one run to the next
            identity = Rndz.Identity.new()
    except GLib.Error as e:
        sys.exit(f'Cannot make an identity: {e.message}')
    # Not client.props.identity = Rndz.Identity.new(): PyGObject 3.42 warns
    # when the only reference to an object it passes is a temporary's
    client.set_identity(identity)
    return client


def main():
    args, options = parse_options(sys.argv[1:])
    if not args:
        usage()
    tcp = '--tcp' in options
    secure = '--insecure' not in options
    pin = options.get('--peer-fingerprint')
    if pin is not None:
        try:
            pin = Rndz.fingerprint_normalize(pin)
        except GLib.Error as e:
            sys.exit(f'--peer-fingerprint: {e.message}')

    for signum in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, lambda: quit(0) or GLib.SOURCE_CONTINUE)

    command = args[0]
    if command == 'server' and len(args) <= 2:
        run_server(args[1] if len(args) == 2 else '0.0.0.0:8888')
    elif command == 'listen' and len(args) == 3:
        client = new_client(args[2], args[1], options)
        if pin is not None:
            # Others get no answer at all
            client.props.allowed_fingerprints = [pin]
        run_listener(client, tcp, secure)
    elif command == 'connect' and len(args) in (4, 5):
        message = args[4] if len(args) == 5 else None
        run_connector(new_client(args[2], args[1], options), args[3], message, tcp,
                      secure, pin)
    else:
        usage()

    return status


if __name__ == '__main__':
    sys.exit(main())
