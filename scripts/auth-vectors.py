#!/usr/bin/env python3
# auth-vectors.py: the test vectors of doc/protocol.md, "Authentication"
#
# SPDX-License-Identifier: MIT
#
# Computes, from the definition in doc/protocol.md alone (Python's hmac
# module, nothing of rndz-glib), the keys and MACs that the document and
# tests/test-auth.c and tests/test-message.c quote. Run it after changing
# the MAC input; it prints each vector's input (NUL shown as ␀) and the
# message as rndz-glib writes it.
#
#   /usr/bin/python3 scripts/auth-vectors.py

import hashlib
import hmac
import json

VERSION = "rndz2"
FP_BOB = "3c1d0b9a8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b"
FP_ALICE = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def derive_key(secret, peer_id):
    return hmac.new(secret, peer_id.encode(), hashlib.sha256).digest()


def mac_input(msg):
    """The parts joined with NUL; candidates, when there are, tenth; a
    fingerprint, when there is one, eleventh (the tenth then empty if
    there are no candidates)"""
    parts = [VERSION, msg["type"], str(msg["tid"]), msg.get("id", ""),
             msg.get("target", ""), msg.get("addr", ""), str(msg["ts"]),
             msg["nonce"], msg["srv"]]
    if "cand" in msg or "fp" in msg:
        parts.append(msg.get("cand", ""))
    if "fp" in msg:
        parts.append(msg["fp"])
    return "\0".join(parts).encode()


def sign(msg, key):
    return hmac.new(key, mac_input(msg), hashlib.sha256).hexdigest()


def encode(msg, mac):
    """As rndz-glib writes it: v, type, tid, the type's fields, then ts,
    nonce, srv and mac"""
    order = ["type", "tid", "id", "target", "addr", "cand", "fp", "ts", "nonce", "srv"]
    obj = {"v": 1}
    for name in order:
        if name in msg:
            obj[name] = msg[name]
    obj["mac"] = mac
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def show(title, msg, key):
    mac = sign(msg, key)
    print(f"## {title}")
    print("input:", mac_input(msg).decode().replace("\0", "␀"))
    print("mac:  ", mac)
    print(encode(msg, mac))
    print()


def main():
    doc_secret = b"correct horse battery staple"
    alice = derive_key(doc_secret, "alice")
    bob = derive_key(doc_secret, "bob")
    srv = "198.51.100.7:8888"

    print("# doc/protocol.md (secret “correct horse battery staple”)")
    print("key of alice:", alice.hex())
    print("key of bob:  ", bob.hex())
    print()
    show("ping", {"type": "ping", "tid": 7, "id": "alice", "ts": 1700000000000,
                  "nonce": "0011223344556677", "srv": srv}, alice)
    show("isync", {"type": "isync", "tid": 42, "id": "bob", "target": "alice",
                   "ts": 1700000000123, "nonce": "8899aabbccddeeff", "srv": srv}, bob)
    show("ping with candidates",
         {"type": "ping", "tid": 7, "id": "alice", "cand": "192.168.1.20:4000 10.8.0.3:4000",
          "ts": 1700000000000, "nonce": "0011223344556677", "srv": srv}, alice)
    show("isync with candidates",
         {"type": "isync", "tid": 42, "id": "bob", "target": "alice",
          "cand": "192.168.1.30:51000", "ts": 1700000000123, "nonce": "8899aabbccddeeff",
          "srv": srv}, bob)
    show("relay", {"type": "relay", "tid": 42, "id": "bob", "target": "alice",
                   "ts": 1700000005123, "nonce": "8899aabbccddee00", "srv": srv}, bob)
    show("ping to an IPv6 server",
         {"type": "ping", "tid": 7, "id": "alice", "ts": 1700000000000,
          "nonce": "0011223344556677", "srv": "[2001:db8::7]:8888"}, alice)
    # Secure connections: the fingerprints of bob's and alice's certificates
    show("secure isync",
         {"type": "isync", "tid": 42, "id": "bob", "target": "alice", "fp": FP_BOB,
          "ts": 1700000000123, "nonce": "8899aabbccddeeff", "srv": srv}, bob)
    show("secure isync with candidates",
         {"type": "isync", "tid": 42, "id": "bob", "target": "alice",
          "cand": "192.168.1.30:51000", "fp": FP_BOB, "ts": 1700000000123,
          "nonce": "8899aabbccddeeff", "srv": srv}, bob)
    show("secure rsync",
         {"type": "rsync", "tid": 3141592653, "id": "alice", "target": "bob", "fp": FP_ALICE,
          "ts": 1700000000456, "nonce": "0011223344556688", "srv": srv}, alice)

    key = derive_key(b"secret", "alice")
    print("# tests/test-auth.c, /auth/vectors (secret “secret”)")
    print("key of alice:", key.hex())
    print()
    show("ping", {"type": "ping", "tid": 42, "id": "alice", "ts": 1700000000000,
                  "nonce": "0123456789abcdef", "srv": "127.0.0.1:8888"}, key)
    show("isync", {"type": "isync", "tid": 7, "id": "alice", "target": "bob",
                   "ts": 1700000000000, "nonce": "0123456789abcdef",
                   "srv": "127.0.0.1:8888"}, key)


if __name__ == "__main__":
    main()
