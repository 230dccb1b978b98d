"""Signed checkpoints: Ed25519 signatures over a journal's chain head.

A live session with a signing key journals a :class:`Checkpoint` every few
seconds: a signature over the run id, a seq and the chain hash of that
record. The run header names the key by its fingerprint. Anyone holding the
public key checks them (``tidemark verify --pubkey``): a journal rewritten
by someone without the private key fails at the first checkpoint it
changed, and every record up to the last checkpoint is proved.

Keys: a PEM file (PKCS #8 private, SubjectPublicKeyInfo public, as
``tidemark keygen`` writes them) or 64 hex characters (the raw 32 bytes);
the private key may come from the environment variable
:data:`SIGNING_KEY_ENV` instead of a file. ``cryptography`` is imported only
when a key is used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tidemark.core.events import Checkpoint

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNING_KEY_ENV: Final = "TIDEMARK_SIGNING_KEY"
DOMAIN: Final = b"tidemark checkpoint v1\x00"
"""Prefix of every signed message, so the signature means nothing elsewhere."""


class SigningKeyError(ValueError):
    """A key that cannot be read or used; one line says why."""


def message(run_id: str, seq: int, head: bytes) -> bytes:
    """What a checkpoint signs: the domain, the run id, ``seq`` (u64 LE) and
    the chain hash of record ``seq``."""
    return DOMAIN + run_id.encode() + b"\x00" + seq.to_bytes(8, "little") + head


def fingerprint(public: Ed25519PublicKey) -> str:
    """``ed25519:`` and the SHA-256 (hex) of the raw public key."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()


class Signer:
    """A private key signing one run's checkpoints."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.fingerprint = fingerprint(key.public_key())

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Signer | None:
        """The key in ``path``, else in ``$TIDEMARK_SIGNING_KEY``, else None."""
        if path is not None:
            try:
                text = Path(path).read_bytes()
            except OSError as exc:
                raise SigningKeyError(f"{path}: cannot read the signing key: {exc.strerror}") from None
            return cls(_private_key(text, str(path)))
        value = os.environ.get(SIGNING_KEY_ENV)
        if not value:
            return None
        return cls(_private_key(value.encode(), f"${SIGNING_KEY_ENV}"))

    def checkpoint(self, ts: int, run_id: str, seq: int, head: bytes) -> Checkpoint:
        """The checkpoint of record ``seq`` (chain hash ``head``), at time ``ts``."""
        signature = self._key.sign(message(run_id, seq, head))
        return Checkpoint(ts, seq, head.hex(), signature.hex(), self.fingerprint)


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the public key: {exc.strerror}") from None
    raw = _hex32(data)
    try:
        if raw is not None:
            return Ed25519PublicKey.from_public_bytes(raw)
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not an Ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path}: not an Ed25519 public key ({type(key).__name__})")
    return key


def signature_holds(public: Ed25519PublicKey, run_id: str, checkpoint: Checkpoint) -> bool:
    """Whether ``checkpoint``'s signature is ``public``'s over what it states."""
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(
            bytes.fromhex(checkpoint.signature), message(run_id, checkpoint.seq, bytes.fromhex(checkpoint.head))
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def new_key() -> tuple[bytes, bytes, str]:
    """A fresh key pair: (private PEM, public PEM, fingerprint)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public, fingerprint(key.public_key())


def _private_key(data: bytes, where: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = _hex32(data)
    try:
        if raw is not None:
            return Ed25519PrivateKey.from_private_bytes(raw)
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{where}: not an unencrypted Ed25519 private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{where}: not an Ed25519 private key ({type(key).__name__})")
    return key


def _hex32(data: bytes) -> bytes | None:
    text = data.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None
    return None
