"""The sealing of personal data intake keeps: a keyed hash (HMAC-SHA256) of the ID number for
matching, authenticated encryption (AES-GCM) for storage, under keys that rotate."""
from __future__ import annotations

import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runtime.settings import Settings


class IdentityVault:
    """Keyed hash for matching and authenticated encryption for storage of personal data.

    A sealed value names the key that sealed it: version byte 1, the key id's length and the key id,
    then nonce and ciphertext. Values sealed under an old key (`id_encryption_old_keys`) still open;
    `reseal` moves one to the current key (POST /v1/keys:reencrypt)."""

    VERSION = 1

    def __init__(self, settings: Settings) -> None:
        self._hash_key = bytes.fromhex(settings.id_hash_key)
        self.key_id = settings.id_encryption_key_id
        self._aeads = {kid: AESGCM(bytes.fromhex(key)) for kid, key in settings.id_encryption_old_keys.items()}
        self._aeads[self.key_id] = AESGCM(bytes.fromhex(settings.id_encryption_key))
        self.header = self.header_of(self.key_id)

    @classmethod
    def header_of(cls, key_id: str) -> bytes:
        encoded = key_id.encode()
        return bytes([cls.VERSION, len(encoded)]) + encoded

    def id_hash(self, id_number: str) -> str:
        return hmac.digest(self._hash_key, id_number.strip().upper().encode(), "sha256").hex()

    def member_id(self, id_number: str) -> str:
        return "m-" + self.id_hash(id_number)[:24]

    def encrypt(self, plain: str) -> bytes:
        nonce = os.urandom(12)
        return self.header + nonce + self._aeads[self.key_id].encrypt(nonce, plain.encode(), None)

    def decrypt(self, blob: bytes) -> str:
        key_id, sealed = self._split(blob)
        aead = self._aeads.get(key_id)
        if aead is None:
            raise UnknownEncryptionKey(f"a record is sealed under encryption key id {key_id!r}, which is not "
                                       "configured: add it to FANGPIN_ID_ENCRYPTION_OLD_KEYS")
        return aead.decrypt(sealed[:12], sealed[12:], None).decode()

    def reseal(self, blob: bytes) -> bytes:
        return blob if blob.startswith(self.header) else self.encrypt(self.decrypt(blob))

    @classmethod
    def _split(cls, blob: bytes) -> tuple[str, bytes]:
        if len(blob) < 2 or blob[0] != cls.VERSION:
            raise ValueError("not a sealed value of version 1")
        end = 2 + blob[1]
        return blob[2:end].decode(), blob[end:]


class UnknownEncryptionKey(LookupError):
    """A stored value names a key id the service was not given."""
