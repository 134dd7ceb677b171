"""Envelope encryption with XChaCha20-Poly1305-IETF (libsodium via PyNaCl).

Each version gets a fresh random data key (DEK). The value is sealed under the
DEK, the DEK under a root key. Both seals carry associated data naming the
format, the tenant, the secret id and the version (and, for the DEK, the root
key id), so a ciphertext or wrapped key copied to another row fails to open.
Stored form of each seal: 24-byte nonce || ciphertext-with-tag.
"""
from __future__ import annotations

from nacl.bindings import (crypto_aead_xchacha20poly1305_ietf_decrypt,
                           crypto_aead_xchacha20poly1305_ietf_encrypt,
                           crypto_aead_xchacha20poly1305_ietf_KEYBYTES as KEYBYTES,
                           crypto_aead_xchacha20poly1305_ietf_NPUBBYTES as NONCEBYTES)
from nacl.exceptions import CryptoError
from nacl.utils import random

FORMAT = b"hush/1"

__all__ = ["CryptoError", "seal", "open_", "rewrap", "seal_part", "open_part"]


def _aad(part: bytes, tenant: str, secret_id: str, version: int, key_id: str) -> bytes:
    # Length-prefixed, so no two different tuples encode alike.
    fields = (FORMAT, part, tenant.encode(), secret_id.encode(), str(version).encode(), key_id.encode())
    return b"".join([len(f).to_bytes(4, "big") + f for f in fields])


def _seal(key: bytes, message: bytes, aad: bytes) -> bytes:
    nonce = random(NONCEBYTES)
    return nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(message, aad, nonce, key)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < NONCEBYTES:
        raise CryptoError("sealed data too short")
    return crypto_aead_xchacha20poly1305_ietf_decrypt(sealed[NONCEBYTES:], aad, sealed[:NONCEBYTES], key)


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
