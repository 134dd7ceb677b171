"""Envelope encryption with XChaCha20-Poly1305-IETF (libsodium via PyNaCl).

Each version gets a fresh random data key (DEK). The value is sealed under the
DEK, the DEK under a root key. Both seals carry associated data naming the
format, the tenant, the secret id and the version (and, for the DEK, the root
key id), so a ciphertext or wrapped key copied to another row fails to open.
Stored form of each seal: 24-byte nonce || ciphertext-with-tag.

libsodium is called through PyNaCl's compiled module (nacl._sodium) directly:
importing nacl.bindings, which loads every binding PyNaCl has, cost 13-19 ms
of each new connection's first call; nacl._sodium costs about 1 ms.
"""
from __future__ import annotations

import os

from nacl._sodium import ffi, lib

FORMAT = b"hush/1"
if lib.sodium_init() < 0:  # 0, or 1 when already initialised
    raise RuntimeError("libsodium could not be initialised")
KEYBYTES = lib.crypto_aead_xchacha20poly1305_ietf_keybytes()
NONCEBYTES = lib.crypto_aead_xchacha20poly1305_ietf_npubbytes()
ABYTES = lib.crypto_aead_xchacha20poly1305_ietf_abytes()


class CryptoError(Exception):
    """A seal did not open: wrong key, wrong associated data, or altered bytes."""


def random(n: int) -> bytes:
    return os.urandom(n)


def _checked(key: bytes, nonce: bytes) -> None:
    # libsodium reads exactly KEYBYTES and NONCEBYTES: anything else must not reach it.
    if len(key) != KEYBYTES or len(nonce) != NONCEBYTES:
        raise CryptoError("a key is %d bytes and a nonce %d" % (KEYBYTES, NONCEBYTES))


def encrypt(message: bytes, aad: bytes, nonce: bytes, key: bytes) -> bytes:
    """XChaCha20-Poly1305-IETF: ciphertext with its 16-byte tag."""
    _checked(key, nonce)
    out = ffi.new("unsigned char[]", len(message) + ABYTES)
    out_len = ffi.new("unsigned long long *")
    if lib.crypto_aead_xchacha20poly1305_ietf_encrypt(out, out_len, message, len(message), aad, len(aad), ffi.NULL,
                                                      nonce, key) != 0:
        raise CryptoError("encryption failed")
    return ffi.buffer(out, out_len[0])[:]


def decrypt(ciphertext: bytes, aad: bytes, nonce: bytes, key: bytes) -> bytes:
    """The message, or CryptoError when the tag does not match."""
    _checked(key, nonce)
    if len(ciphertext) < ABYTES:
        raise CryptoError("ciphertext too short")
    out = ffi.new("unsigned char[]", max(len(ciphertext) - ABYTES, 1))
    out_len = ffi.new("unsigned long long *")
    if lib.crypto_aead_xchacha20poly1305_ietf_decrypt(out, out_len, ffi.NULL, ciphertext, len(ciphertext), aad,
                                                      len(aad), nonce, key) != 0:
        raise CryptoError("decryption failed")
    return ffi.buffer(out, out_len[0])[:]


__all__ = ["CryptoError", "seal", "open_", "rewrap", "seal_part", "open_part"]


def _aad(part: bytes, tenant: str, secret_id: str, version: int, key_id: str) -> bytes:
    # Length-prefixed, so no two different tuples encode alike.
    fields = (FORMAT, part, tenant.encode(), secret_id.encode(), str(version).encode(), key_id.encode())
    return b"".join([len(f).to_bytes(4, "big") + f for f in fields])


def _seal(key: bytes, message: bytes, aad: bytes) -> bytes:
    nonce = random(NONCEBYTES)
    return nonce + encrypt(message, aad, nonce, key)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < NONCEBYTES:
        raise CryptoError("sealed data too short")
    return decrypt(sealed[NONCEBYTES:], aad, sealed[:NONCEBYTES], key)


def seal_part(root_key: bytes, key_id: str, part: bytes, tenant: str, row_id: str, version: int,
              plaintext: bytes) -> tuple[bytes, bytes]:
    """-> (wrapped_dek, ciphertext). `part` names what is sealed (b"value" for a
    secret version, b"oauth-tokens" and so on), so a ciphertext moved to a
    column of another kind does not open; the data key's seal is the same for
    every part, which lets rewrap treat all of them alike."""
    dek = random(KEYBYTES)
    ciphertext = _seal(dek, plaintext, _aad(part, tenant, row_id, version, ""))
    wrapped = _seal(root_key, dek, _aad(b"dek", tenant, row_id, version, key_id))
    return wrapped, ciphertext


def open_part(root_key: bytes, key_id: str, part: bytes, tenant: str, row_id: str, version: int,
              wrapped_dek: bytes, ciphertext: bytes) -> bytes:
    """Raises CryptoError when either seal does not match its row."""
    dek = _open(root_key, bytes(wrapped_dek), _aad(b"dek", tenant, row_id, version, key_id))
    return _open(dek, bytes(ciphertext), _aad(part, tenant, row_id, version, ""))


def seal(root_key: bytes, key_id: str, tenant: str, secret_id: str, version: int,
         plaintext: bytes) -> tuple[bytes, bytes]:
    """A secret version's value -> (wrapped_dek, ciphertext)."""
    return seal_part(root_key, key_id, b"value", tenant, secret_id, version, plaintext)


def open_(root_key: bytes, key_id: str, tenant: str, secret_id: str, version: int,
          wrapped_dek: bytes, ciphertext: bytes) -> bytes:
    """Raises CryptoError when either seal does not match its row."""
    return open_part(root_key, key_id, b"value", tenant, secret_id, version, wrapped_dek, ciphertext)


def rewrap(old_root: bytes, old_key_id: str, new_root: bytes, new_key_id: str, tenant: str, secret_id: str,
           version: int, wrapped_dek: bytes) -> bytes:
    """The same data key sealed under another root key; the value's ciphertext is untouched
    (its associated data names no root key). Raises CryptoError when the seal does not match."""
    dek = _open(old_root, bytes(wrapped_dek), _aad(b"dek", tenant, secret_id, version, old_key_id))
    return _seal(new_root, dek, _aad(b"dek", tenant, secret_id, version, new_key_id))
