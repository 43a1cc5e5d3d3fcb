#!/usr/bin/python3
# make-corpus.py: write the seed corpora of the fuzz harnesses
#
# SPDX-License-Identifier: MIT
#
# Usage: tests/fuzz/make-corpus.py [CORPUS-DIR]   (default: tests/fuzz/corpus)
#
# Writes corpus/decode/seed-* (valid messages of every type, unframed and
# framed) and corpus/server/seed-* (programs for fuzz-server.c, whose
# format is described at the top of that file). Files found by fuzzing and
# kept as regression inputs are named otherwise (regress-*) and are left
# alone.

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'corpus')


def encode(msg, pad_to=0):
    """As rndz-glib writes a message (doc/protocol.md)."""
    obj = {'v': 1, **msg}
    data = json.dumps(obj, ensure_ascii=False, separators=(',', ':')).encode()
    if len(data) < pad_to:
        obj['pad'] = 'x' * max(0, pad_to - len(data) - 9)
        data = json.dumps(obj, ensure_ascii=False, separators=(',', ':')).encode()
    return data


def frame(data):
    return struct.pack('!H', len(data)) + data


MESSAGES = {
    'ping': encode({'type': 'ping', 'tid': 7, 'id': 'alice'}),
    'ping-padded': encode({'type': 'ping', 'tid': 7, 'id': 'alice'}, 95),
    'pong': encode({'type': 'pong', 'tid': 7, 'addr': '198.51.100.7:4000'}),
    'pong-v6': encode({'type': 'pong', 'tid': 4294967295,
                       'addr': '[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535'}),
    'isync': encode({'type': 'isync', 'tid': 42, 'id': 'bob', 'target': 'alice'}),
    'isync-padded': encode({'type': 'isync', 'tid': 42, 'id': 'bob', 'target': 'alice'}, 112),
    'fsync': encode({'type': 'fsync', 'tid': 3141592653, 'id': 'bob',
                     'addr': '203.0.113.9:51000'}),
    'fsync-auth': encode({'type': 'fsync', 'tid': 1, 'id': 'bob',
                          'addr': '[2001:db8::1]:4000', 'auth': True}),
    'rsync': encode({'type': 'rsync', 'tid': 3141592653, 'id': 'alice', 'target': 'bob'}),
    'redirect': encode({'type': 'redirect', 'tid': 42, 'id': 'alice',
                        'addr': '198.51.100.7:4000'}),
    'bye': encode({'type': 'bye', 'tid': 8, 'id': 'alice'}),
    'error': encode({'type': 'error', 'tid': 42, 'code': 'peer-not-found'}),
    'error-unknown-code': encode({'type': 'error', 'tid': 1, 'code': 'from-the-future'}),
    'error-rate-limited': encode({'type': 'error', 'tid': 43, 'code': 'rate-limited',
                                  'retry': 60000}),
    'error-auth-required': encode({'type': 'error', 'tid': 44, 'code': 'auth-required'}),
    # The test vectors of doc/protocol.md
    'ping-signed': (b'{"v":1,"type":"ping","tid":7,"id":"alice","ts":1700000000000,'
                    b'"nonce":"0011223344556677","srv":"198.51.100.7:8888",'
                    b'"mac":"08b3c9e9bc3de733eaa614c643498b24df00a0f54418c9bc54f9bfccf5c5d3d9"}'),
    'isync-signed': (b'{"v":1,"type":"isync","tid":42,"id":"bob","target":"alice",'
                     b'"ts":1700000000123,"nonce":"8899aabbccddeeff","srv":"198.51.100.7:8888",'
                     b'"mac":"b3301f817edf55fb0182f282c8ebb53fc5b474a654fae1cf96dfa3cec95c48b6"}'),
    'ping-signed-v6': (b'{"v":1,"type":"ping","tid":7,"id":"alice","ts":1700000000000,'
                       b'"nonce":"0011223344556677","srv":"[2001:db8::7]:8888",'
                       b'"mac":"4a5ccdf059107751195b0c40224f94912afd080327d179a643f164d900ae848c"}'),
    # What the fast path leaves to json-glib
    'ping-escapes': b'{ "v" : 1, "type":"ping", "tid":7, "id":"\\u0061l\\"ice\\\\" }',
    'ping-v2-extra': (b'{"v":2,"type":"ping","tid":7,"id":"\xe6\x97\xa5\xe6\x9c\xac",'
                      b'"x":[1,2.5,-3,null,{"y":[true,false]}]}'),
    'ping-nested-8': b'{"v":1,"type":"ping","tid":7,"id":"a","x":[[[[[[[1]]]]]]]}',
    'hello-unknown-type': b'{"v":1,"type":"hello","tid":1,"id":"alice"}',
}


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), 'wb') as f:
        f.write(data)


def decode_corpus():
    directory = os.path.join(OUT, 'decode')
    for name, data in MESSAGES.items():
        write(directory, 'seed-' + name, data)
        write(directory, 'seed-' + name + '-framed', frame(data))
    # A stream: two frames and the start of a third
    write(directory, 'seed-stream',
          frame(MESSAGES['ping']) + frame(MESSAGES['bye']) + frame(MESSAGES['isync'])[:9])


# fuzz-server.c's programs
OP = {name: i for i, name in enumerate([
    'ping', 'isync', 'rsync', 'bye', 'other', 'raw', 'stream', 'connect',
    'close', 'select', 'burst', 'pause', 'setprop', 'replay', 'split', 'idle'])}
IDS = ['alice', 'bob', 'carol', 'd', 'escapes', 'nihongo', 'x64', 'brackets']
TIDS = {0: 0, 1: 1, 2: 2, 3: 3, 7: 4, 42: 5, 255: 6, 2**32 - 1: 14}
PAD_NONE, PAD_EXACT, PAD_SHORT, PAD_LARGE = range(4)


def op(kind, source, tcp=False):
    return bytes([OP[kind] << 4 | (8 if tcp else 0) | source])


def ping(source, id_, tid=7, pad=PAD_EXACT, tcp=False, signed=False, elsewhere=False):
    return op('ping', source, tcp) + bytes([IDS.index(id_) | pad << 3,
                                            TIDS[tid] | (0x10 if signed else 0) |
                                            (0x40 if elsewhere else 0)])


def isync(source, id_, target, tid=42, pad=PAD_EXACT, tcp=False, signed=False):
    return op('isync', source, tcp) + bytes([IDS.index(id_) | IDS.index(target) << 3 | pad << 6,
                                             TIDS[tid] | (0x10 if signed else 0)])


def rsync(which=0, signed=False):
    # As the target of the fsync answers, from where the fsync went
    return op('rsync', 0) + bytes([which | (0x20 if signed else 0)])


def bye(source, id_, tid=1, tcp=False, signed=False):
    return op('bye', source, tcp) + bytes([IDS.index(id_) | (0x08 if signed else 0), TIDS[tid]])


def rendezvous(tcp, signed=False):
    return (ping(2, 'alice', tcp=tcp, signed=signed) +
            isync(3, 'bob', 'alice', tcp=tcp, signed=signed) +
            rsync(signed=signed) +
            isync(3, 'bob', 'carol', tid=1, tcp=tcp, signed=signed) +
            bye(2, 'alice', tcp=tcp, signed=signed) +
            isync(3, 'bob', 'alice', tid=2, tcp=tcp, signed=signed))


def server_corpus():
    directory = os.path.join(OUT, 'server')
    defaults = bytes([0, 0])
    write(directory, 'seed-udp-rendezvous', defaults + rendezvous(False))
    write(directory, 'seed-tcp-rendezvous', defaults + rendezvous(True))
    # Authentication on: signed, then unsigned and replayed, then signed
    # for another server
    write(directory, 'seed-auth', bytes([8, 0]) + rendezvous(False, True) +
          rendezvous(True, True) + ping(4, 'bob', signed=False) +
          op('replay', 5) + bytes([4]) + ping(6, 'carol', signed=True, elsewhere=True))
    # The UDP isync retransmitted, and its tid reused for another target
    write(directory, 'seed-udp-retransmit', defaults +
          ping(2, 'alice') + ping(6, 'carol') + isync(3, 'bob', 'alice') +
          isync(3, 'bob', 'alice') + isync(3, 'bob', 'carol') + rsync() + rsync())
    # No amplification: unpadded, one byte short, large
    write(directory, 'seed-amplification', defaults +
          ping(6, 'd', tid=2**32 - 1, pad=PAD_NONE) + ping(6, 'd', tid=2**32 - 1, pad=PAD_SHORT) +
          ping(6, 'x64', tid=2**32 - 1, pad=PAD_LARGE) +
          isync(7, 'd', 'x64', pad=PAD_SHORT) + isync(7, 'd', 'x64', pad=PAD_EXACT))
    # Small limits: max-peers 2, request-rate 1, max-connections 3
    write(directory, 'seed-limits', bytes([1 | 2 | 16, 1 | 0 << 2 | 2 << 4]) +
          ping(0, 'alice') + ping(1, 'bob') + ping(2, 'carol') + ping(3, 'd', tcp=True) +
          isync(4, 'escapes', 'alice') + op('burst', 4) + bytes([20]) +
          op('connect', 0) + bytes([0xf0]) + op('connect', 2) + bytes([7]) +
          op('setprop', 0) + bytes([0, 7]))
    # TCP: several frames in one write, a frame in two parts, garbage,
    # a reader that stops reading, connections closed
    write(directory, 'seed-tcp-stream', defaults +
          ping(2, 'alice', tcp=True) + op('burst', 2, True) + bytes([10]) +
          op('split', 2, True) + bytes([5]) +
          op('other', 2, True) + bytes([4]) +
          op('pause', 2, True) + ping(2, 'alice', tcp=True) + op('burst', 2, True) + bytes([63]) +
          op('connect', 3) + bytes([2]) + op('select', 3) + bytes([1]) +
          op('stream', 3, True) + bytes([7]) + b'\x00\x05{{{{{' +
          op('close', 2) + bytes([0]) + op('idle', 0))
    # A peer that stops reading: its answers pile up past the server's
    # output limit, and the server closes the connection
    write(directory, 'seed-tcp-not-reading', defaults +
          ping(2, 'alice', tcp=True) + op('pause', 2, True) +
          op('burst', 2, True) + bytes([63]) + op('burst', 2, True) + bytes([63]) +
          op('burst', 2, True) + bytes([63]) + op('pause', 2, True) + ping(2, 'alice', tcp=True))
    # Bad datagrams: raw bytes, oversize, cut short
    raw = MESSAGES['ping-padded']
    write(directory, 'seed-garbage', defaults +
          op('raw', 1) + bytes([len(raw) // 6]) + raw[:len(raw) // 6 * 6] +
          op('stream', 1) + bytes([1]) + op('split', 1) + bytes([30]) +
          op('other', 1) + bytes([7]) + op('other', 1) + bytes([8]) + op('other', 1) + bytes([9]))


decode_corpus()
server_corpus()
