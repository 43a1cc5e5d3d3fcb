#!/usr/bin/python3
# test-secure.py: secure connections (TLS, DTLS) from Python
#
# SPDX-License-Identifier: MIT
#
# Identities (in memory and in a file), and a listener and a connector
# that reach each other through a loopback server with connect_tls() /
# accept_tls() over TCP and connect_dtls() / accept_dtls() over UDP: data
# both ways, each side sees the other's fingerprint, a wrong pin fails
# with Rndz.Error.IDENTITY_MISMATCH. Everything a Python program touches:
# Gio.TlsConnection streams, Rndz.DtlsChannel's GLib.Bytes helpers, the
# "closed" signal, errors as GLib.Error.
#
# Prints TAP. Needs GI_TYPELIB_PATH and LD_LIBRARY_PATH to point at the
# build tree (tests/introspection/meson.build sets them).

import os
import re
import shutil
import stat
import sys
import tempfile

import gi

gi.require_version('GLib', '2.0')
gi.require_version('GObject', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Rndz', '1.0')

from gi.repository import GLib, GObject, Gio, Rndz  # noqa: E402

from rndz_gi_test import (  # noqa: E402
    Fixture, Loop, assert_equal, assert_error, call, gather, sleep, run_tests,
    wait_until)

# How long a peer whose handshake failed has to (wrongly) come out of accept
QUIET_MS = 300


def fingerprint_of(connection):
    """The fingerprint of the certificate the peer of a TLS connection showed."""
    return Rndz.fingerprint_from_certificate(connection.get_peer_certificate())


def write(connection, data):
    [written] = gather(call(connection.get_output_stream(), 'write_bytes',
                            GLib.Bytes.new(data), GLib.PRIORITY_DEFAULT, None))
    assert_equal(written, len(data))


def read(connection, size):
    [data] = gather(call(connection.get_input_stream(), 'read_bytes',
                         size, GLib.PRIORITY_DEFAULT, None))
    return data.get_data()


def receive(channel):
    [data] = gather(call(channel, 'receive_bytes', None))
    return data.get_data()


class Listening:
    """A listener, over TCP or UDP, that has registered."""

    def __init__(self, fixture, tcp, identity=None):
        self.client = fixture.client('py-listener')
        self.tcp = tcp
        if identity is not None:
            self.client.props.identity = identity
        if tcp:
            [listened] = gather(call(self.client, 'listen_tcp', None))
            assert listened is True
        else:
            [self.socket] = gather(call(self.client, 'listen_udp', None))

    def accept(self):
        return call(self.client, 'accept_tls' if self.tcp else 'accept_dtls', None)


def connect_secure(connector, tcp, pin):
    return call(connector, 'connect_tls' if tcp else 'connect_dtls', 'py-listener', pin, None)


# Tests

def test_identity_types():
    """The typelib has the identity, the channel and the new error codes"""
    assert issubclass(Rndz.Identity, GObject.Object)
    assert issubclass(Rndz.DtlsChannel, Gio.DatagramBased)
    for name in ('IDENTITY_MISMATCH', 'HANDSHAKE_FAILED', 'PATH_DEAD', 'NOT_SECURE'):
        assert hasattr(Rndz.Error, name), name


def test_identity_in_memory():
    """A fresh identity has a certificate and one fingerprint text form"""
    identity = Rndz.Identity.new()
    fingerprint = identity.get_fingerprint()
    assert re.fullmatch('[0-9a-f]{64}', fingerprint), fingerprint
    certificate = identity.get_certificate()
    assert isinstance(certificate, Gio.TlsCertificate)
    assert_equal(Rndz.fingerprint_from_certificate(certificate), fingerprint)
    assert Rndz.Identity.new().get_fingerprint() != fingerprint

    # Colons and upper case are the same fingerprint; anything else is not one
    assert_equal(Rndz.fingerprint_normalize(spelled(fingerprint)), fingerprint)
    for wrong in ('not hex', fingerprint[:-2], fingerprint + '00'):
        try:
            Rndz.fingerprint_normalize(wrong)
        except GLib.Error:
            pass
        else:
            raise AssertionError(f'fingerprint_normalize() accepted {wrong!r}')


def test_identity_file():
    """new_from_file() creates a 0600 file and loads it back as the same identity"""
    directory = tempfile.mkdtemp(prefix='rndz-test-secure-')
    try:
        path = os.path.join(directory, 'identity.pem')
        created = Rndz.Identity.new_from_file(path)
        mode = os.stat(path).st_mode
        assert_equal(oct(stat.S_IMODE(mode)), oct(0o600))
        with open(path) as f:
            assert 'PRIVATE KEY' in f.read()

        loaded = Rndz.Identity.new_from_file(path)
        assert_equal(loaded.get_fingerprint(), created.get_fingerprint())
        # Loading does not rewrite it
        assert_equal(os.stat(path).st_mode, mode)

        # A file that is not an identity is an error, and stays as it was
        garbage = os.path.join(directory, 'garbage.pem')
        with open(garbage, 'w') as f:
            f.write('not a key\n')
        try:
            Rndz.Identity.new_from_file(garbage)
        except GLib.Error:
            pass
        else:
            raise AssertionError('new_from_file() loaded garbage')
        with open(garbage) as f:
            assert_equal(f.read(), 'not a key\n')
    finally:
        shutil.rmtree(directory)


def test_tls():
    """TCP: connect_tls() and accept_tls(), both fingerprints, streams both ways"""
    fixture = Fixture()
    try:
        identity = Rndz.Identity.new()
        listening = Listening(fixture, tcp=True, identity=identity)
        connector = fixture.client('py-connector')
        notified = []
        connector.connect('notify::identity', lambda obj, pspec: notified.append(pspec.name))
        assert connector.props.identity is None

        # The connector pins the listener; it has no identity of its own
        # yet: the secure call makes one
        connected, (accepted, peer_id) = gather(
            connect_secure(connector, True, identity.get_fingerprint()),
            listening.accept())
        assert isinstance(connected, Gio.TlsConnection)
        assert isinstance(accepted, Gio.TlsConnection)
        assert_equal(peer_id, 'py-connector')
        assert_equal(notified, ['identity'])
        assert isinstance(connector.props.identity, Rndz.Identity)
        assert_equal(connector.get_identity(), connector.props.identity)

        assert_equal(fingerprint_of(connected), identity.get_fingerprint())
        assert_equal(fingerprint_of(accepted), connector.props.identity.get_fingerprint())
        assert_equal(connected.get_protocol_version(), Gio.TlsProtocolVersion.TLS_1_3)

        write(connected, b'ping!')
        assert_equal(read(accepted, 5), b'ping!')
        write(accepted, b'pong!')
        assert_equal(read(connected, 5), b'pong!')

        connected.close(None)
        assert_equal(read(accepted, 5), b'')
        accepted.close(None)
    finally:
        fixture.close()


def test_dtls():
    """UDP: connect_dtls() and accept_dtls(), both fingerprints, datagrams both ways"""
    fixture = Fixture()
    try:
        listener_identity = Rndz.Identity.new()
        connector_identity = Rndz.Identity.new()
        listening = Listening(fixture, tcp=False, identity=listener_identity)
        connector = fixture.client('py-connector')
        connector.set_identity(connector_identity)

        # No pin: the listener's fingerprint comes from the rendezvous
        connected, (accepted, peer_id) = gather(
            connect_secure(connector, False, None), listening.accept())
        assert isinstance(connected, Rndz.DtlsChannel)
        assert isinstance(accepted, Rndz.DtlsChannel)
        assert_equal(peer_id, 'py-connector')
        assert_equal(connected.get_peer_fingerprint(), listener_identity.get_fingerprint())
        assert_equal(accepted.get_peer_fingerprint(), connector_identity.get_fingerprint())
        assert_equal(connected.props.peer_fingerprint, listener_identity.get_fingerprint())

        assert connected.send_bytes(GLib.Bytes.new(b'hello'), None)
        assert_equal(receive(accepted), b'hello')
        big = bytes(range(256)) * 4
        assert accepted.send_bytes(GLib.Bytes.new(big), None)
        assert_equal(receive(connected), big)

        # Closing says so, on this side and on the other
        closed = {}

        def on_closed(name):
            def handler(channel, reason):
                closed[name] = reason
                if len(closed) == 2:
                    loop.quit()
            return handler

        loop = Loop()
        connected.connect('closed', loop.callback(on_closed('connected')))
        accepted.connect('closed', loop.callback(on_closed('accepted')))
        connected.close()
        assert connected.is_closed()
        loop.run()
        assert closed['connected'] is None
        try:
            connected.send_bytes(GLib.Bytes.new(b'too late'), None)
        except GLib.Error:
            pass
        else:
            raise AssertionError('send_bytes() on a closed channel succeeded')
    finally:
        fixture.close()


def test_dtls_path_dead():
    """UDP: a peer gone without a word: 'closed' with PATH_DEAD, as a GLib.Error"""
    fixture = Fixture()
    try:
        listening = Listening(fixture, tcp=False, identity=Rndz.Identity.new())
        connector = fixture.client('py-connector')
        connected, (accepted, peer_id) = gather(
            connect_secure(connector, False, None), listening.accept())
        connected.set_keepalive_interval(100)   # ms: dead after 3 silent ones
        assert_equal(connected.props.keepalive_interval, 100)

        reasons = []
        loop = Loop()

        def on_closed(channel, reason):
            reasons.append(reason)
            loop.quit()

        connected.connect('closed', loop.callback(on_closed))
        # The listener's end vanishes: no close_notify, nothing more from it
        accepted.get_socket().close()
        started = GLib.get_monotonic_time()
        loop.run()
        elapsed_ms = (GLib.get_monotonic_time() - started) // 1000
        assert_error(reasons[0], Rndz.error_quark(), Rndz.Error.PATH_DEAD)
        assert connected.is_closed()
        assert elapsed_ms < 2000, f'{elapsed_ms} ms to find the path dead'
    finally:
        fixture.close()


def wrong_pin(tcp):
    fixture = Fixture()
    try:
        listening = Listening(fixture, tcp, identity=Rndz.Identity.new())
        connector = fixture.client('py-connector')
        someone_else = Rndz.Identity.new().get_fingerprint()

        # The listener waits for a peer that completed its handshake
        accepted = {}
        cancellable = Gio.Cancellable()
        begin, finish = call(listening.client, 'accept_tls' if tcp else 'accept_dtls',
                             cancellable)

        def on_accepted(source, result):
            try:
                accepted['result'] = finish(result)
            except GLib.Error as e:
                accepted['result'] = e

        begin(on_accepted)
        [error] = gather(connect_secure(connector, tcp, someone_else), errors=True)
        assert_error(error, Rndz.error_quark(), Rndz.Error.IDENTITY_MISMATCH)

        # The connector gave up: nothing comes out of accept
        sleep(QUIET_MS)
        assert 'result' not in accepted, accepted
        cancellable.cancel()
        wait_until(lambda: 'result' in accepted)
        assert_error(accepted['result'], Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED)
    finally:
        fixture.close()


def test_tls_wrong_pin():
    """TCP: a pin that is not the listener's fails with IDENTITY_MISMATCH"""
    wrong_pin(tcp=True)


def test_dtls_wrong_pin():
    """UDP: a pin that is not the listener's fails with IDENTITY_MISMATCH"""
    wrong_pin(tcp=False)


def spelled(fingerprint):
    """A fingerprint as people write it: upper case, colons between bytes."""
    return ':'.join(fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()


def listener_pins(tcp):
    fixture = Fixture()
    try:
        listening = Listening(fixture, tcp, identity=Rndz.Identity.new())
        connectors, fingerprints = {}, {}
        for name in ('friend', 'stranger', 'refused'):
            connectors[name] = fixture.client(f'py-{name}')
            identity = Rndz.Identity.new()
            connectors[name].props.identity = identity
            fingerprints[name] = identity.get_fingerprint()

        # Pins: a list of str, in any spelling, read back in the one form
        listener = listening.client
        listener.props.allowed_fingerprints = [spelled(fingerprints['friend']),
                                               fingerprints['refused']]
        assert_equal(list(listener.get_allowed_fingerprints()),
                     [fingerprints['friend'], fingerprints['refused']])

        # A handler that returns a bool decides too
        asked = []

        def on_authorize(client, peer_id, fingerprint):
            asked.append((peer_id, fingerprint))
            return peer_id != 'py-refused'

        listener.connect('authorize-fingerprint', on_authorize)
        friend, stranger, refused, (accepted, peer_id) = gather(
            *(call(connectors[name], 'connect_tls' if tcp else 'connect_dtls',
                   'py-listener', None, None)
              for name in ('friend', 'stranger', 'refused')),
            listening.accept(), errors=True)

        assert isinstance(friend, Gio.TlsConnection if tcp else Rndz.DtlsChannel), friend
        assert_equal(peer_id, 'py-friend')
        assert_error(stranger, Rndz.error_quark(), Rndz.Error.PEER_NO_ANSWER)
        assert_error(refused, Rndz.error_quark(), Rndz.Error.PEER_NO_ANSWER)
        assert ('py-friend', fingerprints['friend']) in asked, asked
        assert ('py-refused', fingerprints['refused']) in asked, asked
        if tcp:
            friend.close(None)
        else:
            friend.close()
    finally:
        fixture.close()


def test_tls_listener_pins():
    """TCP: allowed-fingerprints and authorize-fingerprint let in only the friend"""
    listener_pins(tcp=True)


def test_dtls_listener_pins():
    """UDP: allowed-fingerprints and authorize-fingerprint let in only the friend"""
    listener_pins(tcp=False)


def test_not_secure():
    """A listener without an identity: a secure connect fails with NOT_SECURE"""
    fixture = Fixture()
    try:
        listener = fixture.client('py-listener')
        [socket] = gather(call(listener, 'listen_udp', None))
        connector = fixture.client('py-connector')
        [error] = gather(call(connector, 'connect_dtls', 'py-listener', None, None), errors=True)
        assert_error(error, Rndz.error_quark(), Rndz.Error.NOT_SECURE)
        socket.close()
    finally:
        fixture.close()


TESTS = [
    test_identity_types,
    test_identity_in_memory,
    test_identity_file,
    test_tls,
    test_dtls,
    test_dtls_path_dead,
    test_tls_wrong_pin,
    test_dtls_wrong_pin,
    test_tls_listener_pins,
    test_dtls_listener_pins,
    test_not_secure,
]


if __name__ == '__main__':
    sys.exit(run_tests(TESTS))
