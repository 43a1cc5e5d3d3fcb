// rndz-gi-test.js: what the GJS introspection tests share
//
// SPDX-License-Identifier: MIT
//
// Assertions on values and GLib.Errors, bounded waits, a loopback server
// fixture and the TAP driver. test-rndz.js and test-secure.js import it
// (an ES module: gjs -m).

import GLib from 'gi://GLib?version=2.0';
import Gio from 'gi://Gio?version=2.0';
import Rndz from 'gi://Rndz?version=1.0';
import System from 'system';

// Every wait in the tests is bounded by this
export const TIMEOUT_MS = 10000;

export class AssertionError extends Error {
    get name() {
        return 'AssertionError';
    }
}

export function assert(condition, message = 'assertion failed') {
    if (!condition)
        throw new AssertionError(message);
}

export function assertEqual(a, b) {
    if (a !== b)
        throw new AssertionError(`${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
}

export function assertError(error, domain, code) {
    assert(error instanceof GLib.Error, `${error} is not a GLib.Error`);
    assert(error.matches(domain, code),
        `expected ${domain} ${code}, got ${GLib.quark_to_string(error.domain)} ${error.code}: ${error.message}`);
}

// Resolves after @ms milliseconds of main loop
export function sleep(ms) {
    return new Promise(resolve => {
        GLib.timeout_add(GLib.PRIORITY_DEFAULT, ms, () => {
            resolve();
            return GLib.SOURCE_REMOVE;
        });
    });
}

// Rejects if @promise does not settle within TIMEOUT_MS
export function bounded(promise, what) {
    let timeoutId = 0;
    const timeout = new Promise((resolve, reject) => {
        timeoutId = GLib.timeout_add(GLib.PRIORITY_DEFAULT, TIMEOUT_MS, () => {
            timeoutId = 0;
            reject(new AssertionError(`${what}: timed out after ${TIMEOUT_MS} ms`));
            return GLib.SOURCE_REMOVE;
        });
    });
    return Promise.race([promise, timeout]).finally(() => {
        if (timeoutId !== 0)
            GLib.source_remove(timeoutId);
    });
}

// Resolves when a signal is emitted, with its arguments
export function nextSignal(object, signal) {
    return new Promise(resolve => {
        const id = object.connect(signal, (...args) => {
            object.disconnect(id);
            resolve(args.slice(1));
        });
    });
}

// The error a promise rejects with; fails if it resolves
export async function rejection(promise) {
    try {
        await promise;
    } catch (e) {
        return e;
    }
    throw new AssertionError('expected an error, got none');
}

// Lets closed sockets' sources go before the next test
export function drain() {
    const context = GLib.MainContext.default();
    while (context.iteration(false))
        ;
}

// A server on 127.0.0.1, port 0, and the clients of a test
export class Fixture {
    constructor() {
        this.server = Rndz.Server.new();
        this.server.forward_timeout = 1000; // ms
        const address = Gio.InetSocketAddress.new_from_string('127.0.0.1', 0);
        assert(this.server.listen(address));
        this.address = `127.0.0.1:${this.server.get_port()}`;
        this.clients = [];
    }

    client(id) {
        const client = Rndz.Client.new(id, [this.address]);
        client.timeout = 5000; // ms
        this.clients.push(client);
        return client;
    }

    close() {
        for (const client of this.clients)
            client.stop();
        this.server.stop();
        drain();
    }
}

export async function withFixture(func) {
    const fixture = new Fixture();
    try {
        await func(fixture);
    } finally {
        fixture.close();
    }
}

// Runs [{name, description, func}] in a main loop, prints TAP, exits
export function runTests(tests) {
    if (!Rndz.Server || !Rndz.Client) {
        print('1..0 # SKIP Rndz was built without the client or the server');
        System.exit(0);
    }

    async function main() {
        print(`1..${tests.length}`);
        let failed = 0;
        for (const [index, {name, description, func}] of tests.entries()) {
            try {
                // eslint-disable-next-line no-await-in-loop
                await bounded(Promise.resolve().then(func), name);
                print(`ok ${index + 1} - ${name}: ${description}`);
            } catch (e) {
                failed++;
                print(`not ok ${index + 1} - ${name}: ${description}`);
                for (const line of `${e}\n${e.stack ?? ''}`.trim().split('\n'))
                    print(`# ${line}`);
            }
        }
        return failed;
    }

    const loop = new GLib.MainLoop(null, false);
    let status = 1;
    main().then(failed => {
        status = failed > 0 ? 1 : 0;
    }).catch(e => {
        print(`Bail out! ${e}`);
    }).finally(() => loop.quit());
    loop.run();
    System.exit(status);
}
