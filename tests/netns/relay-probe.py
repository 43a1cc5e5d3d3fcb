#!/usr/bin/python3
# relay-probe.py: a TCP peer for test-nat.sh that measures the relay
#
# SPDX-License-Identifier: MIT
#
#   relay-probe.py ID SERVER PEER BYTES IDLE-SECONDS
#       Reaches PEER (an echoing `rndz client` listener) over TCP through
#       SERVER with RndzClient, the relay allowed, and prints
#         "connected PATH MS"      PATH as rndz_socket_get_path() says,
#                                  MS since the start
#       then sends BYTES bytes while it reads their echo, and prints
#         "echoed BYTES MS"        MS from connected to the last byte back
#       then sends nothing more and waits up to IDLE-SECONDS for the other
#       end (the relay) to close the connection:
#         "closed MS"              MS from the last byte back to the close
#         "open"                   not closed within IDLE-SECONDS
#       Errors: "error TEXT", exit status 1.
#
# Needs PyGObject and the Rndz typelib (GI_TYPELIB_PATH, LD_LIBRARY_PATH).
# Every wait is bounded; lines are flushed at once, the script reads them
# while we run.

import os
import socket
import sys
import threading
import time

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Rndz', '1.0')

from gi.repository import GLib, Rndz  # noqa: E402

CONNECT_TIMEOUT = 10
ECHO_TIMEOUT = 30


def say(*words):
    print(*words, flush=True)


def reach(peer_id, client):
    """Runs rndz_client_connect_tcp_async() in a bounded main loop."""
    loop = GLib.MainLoop()
    outcome = {}

    def done(source, result):
        try:
            outcome['connection'] = client.connect_tcp_finish(result)
        except GLib.Error as e:
            outcome['error'] = e.message
        loop.quit()

    def give_up():
        outcome['error'] = 'no connection within %d s' % CONNECT_TIMEOUT
        loop.quit()
        return GLib.SOURCE_REMOVE

    timer = GLib.timeout_add_seconds(CONNECT_TIMEOUT + 1, give_up)
    client.connect_tcp_async(peer_id, None, done)
    loop.run()
    if 'connection' in outcome:
        GLib.source_remove(timer)
    return outcome.get('connection'), outcome.get('error')


def echo(sock, n_bytes):
    """Sends n_bytes from a thread while this one reads them back."""
    data = b'r' * n_bytes
    failure = []

    def send():
        try:
            sock.sendall(data)
        except OSError as e:
            failure.append(e)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    got = 0
    deadline = time.monotonic() + ECHO_TIMEOUT
    while got < n_bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError('%d of %d bytes echoed within %d s' % (got, n_bytes, ECHO_TIMEOUT))
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError('closed after %d of %d bytes' % (got, n_bytes))
        got += len(chunk)
    sender.join(5)
    if failure:
        raise failure[0]


def wait_close(sock, seconds):
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


def main(argv):
    if len(argv) != 5:
        print('usage: relay-probe.py ID SERVER PEER BYTES IDLE-SECONDS', file=sys.stderr)
        return 2
    own_id, server, peer_id = argv[0], argv[1], argv[2]
    n_bytes, idle = int(argv[3]), float(argv[4])

    start = time.monotonic()
    client = Rndz.Client.new(own_id, [server])
    client.set_relay(True)
    client.set_timeout(CONNECT_TIMEOUT * 1000)  # milliseconds
    connection, error = reach(peer_id, client)
    if connection is None:
        say('error', error)
        return 1
    path = Rndz.socket_get_path(connection.get_socket())
    connected = time.monotonic()
    say('connected', path.value_nick, round((connected - start) * 1000))

    # Plain blocking I/O on our own copy of the descriptor; the
    # GSocketConnection stays referenced, so nothing closes it under us
    sock = socket.socket(fileno=os.dup(connection.get_socket().get_fd()))
    try:
        echo(sock, n_bytes)
        echoed = time.monotonic()
        say('echoed', n_bytes, round((echoed - connected) * 1000))
        if wait_close(sock, idle):
            say('closed', round((time.monotonic() - echoed) * 1000))
        else:
            say('open')
    except (OSError, TimeoutError, ConnectionError) as e:
        say('error', e)
        return 1
    finally:
        sock.close()
        connection.close(None)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
