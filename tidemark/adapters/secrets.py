"""Exchange credentials: where they come from, and how they never reach a
journal, a log or ``ps``.

Credentials come, lowest precedence first, from the environment
(``TIDEMARK_API_KEY``, ``TIDEMARK_API_SECRET``, ``TIDEMARK_API_PASSWORD`` /
``TIDEMARK_API_PASSPHRASE``, ``TIDEMARK_API_UID``, ``TIDEMARK_API_TOKEN``,
``TIDEMARK_API_PRIVATE_KEY``, ``TIDEMARK_API_WALLET_ADDRESS``, or
``TIDEMARK_`` and ccxt's own option name in capitals, e.g.
``TIDEMARK_APIKEY``), then a credentials file (a JSON object of ccxt
options that only its owner may read), then ccxt options files and
``--ccxt-option`` (which warns: every local user sees a command line).

Masking (:func:`mask_options`) is by key *and* by value: an option whose
name looks like a credential, every HTTP header value (headers are never
journaled), and any other value that contains one of those secrets (a URL
with a token in it, say) become ``***``. Every secret is also registered
with the logs, which mask it wherever it appears.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

MASK: Final = "***"

SECRET_WORDS: Final = (
    "apikey",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "uid",
    "privatekey",
    "walletaddress",
    "token",
    "login",
    "twofa",
    "signature",
    "credential",
    "auth",
    "cookie",
    "session",
    "bearer",
)
"""Option names containing one of these (case, ``_`` and ``-`` ignored) hold a credential."""

HEADER_KEYS: Final = frozenset({"headers", "httpheaders"})
"""Options holding HTTP headers: every value in them is masked."""

MIN_SUBSTRING: Final = 6
"""Secrets this long or longer are also masked inside other values; shorter
ones only where a whole value equals them (a 2-character uid must not mask
every "12" in a config)."""

ENV_CREDENTIALS: Final = {
    "TIDEMARK_API_KEY": "apiKey",
    "TIDEMARK_API_SECRET": "secret",
    "TIDEMARK_API_PASSWORD": "password",
    "TIDEMARK_API_PASSPHRASE": "password",
    "TIDEMARK_API_UID": "uid",
    "TIDEMARK_API_TOKEN": "token",
    "TIDEMARK_API_PRIVATE_KEY": "privateKey",
    "TIDEMARK_API_WALLET_ADDRESS": "walletAddress",
    **{
        f"TIDEMARK_{name.upper()}": name
        for name in ("apiKey", "secret", "password", "uid", "login", "privateKey", "walletAddress", "token", "twofa")
    },
}


class CredentialsError(ValueError):
    """Credentials that cannot be used as given; one line says why (exit 2)."""


def flat(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def is_secret_key(key: str) -> bool:
    name = flat(key)
    return any(word in name for word in SECRET_WORDS)


def credentials_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ccxt credential options set in the environment."""
    environ = os.environ if environ is None else environ
    return {option: environ[name] for name, option in ENV_CREDENTIALS.items() if environ.get(name)}


def read_credentials(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A credentials file: a JSON object of ccxt options, readable by its
    owner only (else :class:`CredentialsError`: ``chmod 600`` it)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read credentials: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(f"{path}: credentials readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 it")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CredentialsError(f"{path}: credentials are not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{path}: credentials must be a JSON object of ccxt options")
    return data


def open_to_others(path: str | os.PathLike[str]) -> bool:
    """Whether a file can be read by users other than its owner."""
    try:
        return bool(Path(path).stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False


def secret_values(options: Mapping[str, Any]) -> list[str]:
    """Every secret in ``options``: values of credential-named options and
    of HTTP headers, at any depth."""
    found: list[str] = []
    for _, value, secret in _walk(options, False):
        if secret and isinstance(value, str) and value and value != MASK:
            found.append(value)
        elif secret and isinstance(value, (int, float)) and not isinstance(value, bool):
            found.append(str(value))
    return list(dict.fromkeys(found))


def _walk(options: Mapping[str, Any], secret: bool) -> Iterator[tuple[str, Any, bool]]:
    for key, value in options.items():
        inner = secret or is_secret_key(str(key)) or flat(str(key)) in HEADER_KEYS
        if isinstance(value, Mapping):
            yield from _walk(value, inner)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    yield from _walk(item, inner)
                else:
                    yield key, item, inner
        else:
            yield key, value, inner


def mask_options(options: Mapping[str, Any], extra: list[str] | None = None) -> dict[str, Any]:
    """A copy of ccxt options with every credential, every header value and
    every value containing a secret (of these options, or ``extra``)
    replaced by ``***``."""
    secrets = sorted({*secret_values(options), *(extra or [])}, key=len, reverse=True)
    return _masked(options, False, secrets)


def _masked(options: Mapping[str, Any], secret: bool, secrets: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        inner = secret or is_secret_key(str(key)) or flat(str(key)) in HEADER_KEYS
        out[key] = _masked_value(value, inner, secrets)
    return out


def _masked_value(value: Any, secret: bool, secrets: list[str]) -> Any:
    if isinstance(value, Mapping):
        return _masked(value, secret, secrets)
    if isinstance(value, list):
        return [_masked_value(item, secret, secrets) for item in value]
    if secret:
        return MASK
    if isinstance(value, str):
        return mask_text(value, secrets)
    return value


def mask_text(text: str, secrets: list[str]) -> str:
    """``text`` with every secret in it replaced by ``***`` (short secrets
    only when they are the whole text)."""
    for secret in secrets:
        if secret == text or (len(secret) >= MIN_SUBSTRING and secret in text):
            text = text.replace(secret, MASK) if len(secret) >= MIN_SUBSTRING else MASK
    return text


def command_line_secrets(pairs: list[str]) -> list[str]:
    """The ``--ccxt-option KEY=VALUE`` keys that hold a credential."""
    keys = []
    for pair in pairs:
        key, sep, _ = pair.partition("=")
        if sep and (is_secret_key(key) or any(flat(part) in HEADER_KEYS for part in key.split("."))):
            keys.append(key)
    return keys
