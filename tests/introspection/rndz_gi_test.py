# rndz_gi_test.py: what the Python introspection tests share
#
# SPDX-License-Identifier: MIT
#
# A bounded GLib.MainLoop, a loopback server fixture, async calls run to
# completion, assertions on values and GLib.Errors, and the TAP driver.
# test-rndz.py and test-secure.py import it (Python puts the directory of
# the script it runs first on sys.path).

import sys
import traceback

import gi

gi.require_version('GLib', '2.0')
gi.require_version('GObject', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Rndz', '1.0')

from gi.repository import GLib, Gio, Rndz  # noqa: E402

# Every wait in the tests is bounded by this
TIMEOUT_MS = 10000


class Loop:
    """A GLib.MainLoop that gives up after TIMEOUT_MS.

    Exceptions raised in callbacks do not reach loop.run() in PyGObject:
    they are printed and swallowed. Callbacks wrapped with callback() catch
    them, quit the loop, and run() raises them again.
    """

    def __init__(self):
        self.loop = GLib.MainLoop()
        self.error = None
        self.done = False

    def callback(self, func):
        def wrapper(*args):
            try:
                return func(*args)
            except BaseException as e:  # noqa: B902 - reported by run()
                self.fail(e)
                return GLib.SOURCE_REMOVE
        return wrapper

    def fail(self, error):
        if self.error is None:
            self.error = error
        self.loop.quit()

    def quit(self):
        self.done = True
        self.loop.quit()

    def run(self):
        def on_timeout():
            self.fail(AssertionError(f'timed out after {TIMEOUT_MS} ms'))
            return GLib.SOURCE_REMOVE

        timeout_id = GLib.timeout_add(TIMEOUT_MS, on_timeout)
        self.loop.run()
        if self.error is None:
            GLib.source_remove(timeout_id)
        if self.error is not None:
            raise self.error
        assert self.done


def drain():
    """Lets closed sockets' sources go before the next test."""
    context = GLib.MainContext.default()
    while context.iteration(False):
        pass


def call(obj, method, *args):
    """obj.method_async(*args, callback) and obj.method_finish, for gather()."""
    return (lambda callback: getattr(obj, f'{method}_async')(*args, callback),
            getattr(obj, f'{method}_finish'))


def gather(*calls, errors=False):
    """Runs async calls (from call()) together in a bounded main loop.

    Returns their results in order. A GLib.Error is raised, unless errors
    is true: then it is returned in the place of the result.
    """
    loop = Loop()
    results = [None] * len(calls)
    pending = set(range(len(calls)))

    def start(index, begin, finish):
        def done(source, result):
            try:
                results[index] = finish(result)
            except GLib.Error as e:
                if not errors:
                    raise
                results[index] = e
            pending.discard(index)
            if not pending:
                loop.quit()

        begin(loop.callback(done))

    for index, (begin, finish) in enumerate(calls):
        start(index, begin, finish)
    loop.run()
    return results


def sleep(ms):
    """Runs the main loop for ms milliseconds."""
    loop = Loop()
    GLib.timeout_add(ms, lambda: loop.quit() or GLib.SOURCE_REMOVE)
    loop.run()


def wait_until(predicate):
    """Runs the main loop until predicate() is true (bounded by TIMEOUT_MS)."""
    loop = Loop()

    def check():
        if predicate():
            loop.quit()
            return GLib.SOURCE_REMOVE
        return GLib.SOURCE_CONTINUE

    GLib.timeout_add(10, loop.callback(check))
    loop.run()


class Fixture:
    """A server on 127.0.0.1, port 0, and the clients of a test."""

    def __init__(self):
        self.server = Rndz.Server.new()
        self.server.props.forward_timeout = 1000  # ms
        address = Gio.InetSocketAddress.new_from_string('127.0.0.1', 0)
        assert self.server.listen(address)
        self.address = f'127.0.0.1:{self.server.get_port()}'
        self.clients = []

    def client(self, id):
        client = Rndz.Client.new(id, [self.address])
        client.props.timeout = 5000  # ms
        self.clients.append(client)
        return client

    def close(self):
        for client in self.clients:
            client.stop()
        self.server.stop()
        drain()


def assert_equal(a, b):
    assert a == b, f'{a!r} != {b!r}'


def assert_error(error, domain, code):
    assert isinstance(error, GLib.Error), f'{error!r} is not a GLib.Error'
    assert error.matches(domain, code), \
        f'expected {GLib.quark_to_string(domain)} {int(code)}, ' \
        f'got {error.domain} {error.code}: {error.message}'


def run_tests(tests):
    """Runs the tests, printing TAP; returns the exit status."""
    if not hasattr(Rndz, 'Server') or not hasattr(Rndz, 'Client'):
        print('1..0 # SKIP Rndz was built without the client or the server')
        return 0

    print(f'1..{len(tests)}', flush=True)
    failed = 0
    for number, test in enumerate(tests, 1):
        name = test.__name__[len('test_'):].replace('_', '-')
        try:
            test()
        except BaseException:  # noqa: B902 - reported as TAP
            failed += 1
            print(f'not ok {number} - {name}: {test.__doc__}')
            for line in traceback.format_exc().splitlines():
                print(f'# {line}')
        else:
            print(f'ok {number} - {name}: {test.__doc__}')
        sys.stdout.flush()

    return 1 if failed else 0
