"""Client secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) under ``GHX_SECRET_KEY``.

The key never leaves :class:`shared.settings.Settings`; plain secrets travel as :class:`SecretStr` so a
repr or a log line shows ``**********``. Error messages name what to fix, never the secret or the key.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from shared.errors import ConfigurationError

MISSING_KEY = "GHX_SECRET_KEY is required to store credentials; generate one with: ghexport keygen"


def generate_key() -> str:
    """A new random Fernet key (urlsafe base64 of 32 bytes), suitable for ``GHX_SECRET_KEY``."""
    return Fernet.generate_key().decode("ascii")


def _fernet(key: SecretStr | None) -> Fernet:
    if key is None or not key.get_secret_value().strip():
        raise ConfigurationError(MISSING_KEY)
    try:
        return Fernet(key.get_secret_value().strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ConfigurationError(
            "GHX_SECRET_KEY is not a valid Fernet key (32 bytes, urlsafe base64); generate one with: ghexport keygen"
        ) from None


def encrypt_secret(plain: SecretStr, key: SecretStr | None) -> str:
    """Encrypt ``plain`` under ``key``; raise :class:`ConfigurationError` when the key is missing/invalid."""
    return _fernet(key).encrypt(plain.get_secret_value().encode("utf-8")).decode("ascii")


def decrypt_secret(token: str, key: SecretStr | None, *, connection: str = "?") -> SecretStr:
    """Decrypt a stored secret of ``connection`` (named in errors only).

    Raises :class:`ConfigurationError` when the key is missing, or when it cannot decrypt ``token``
    (the key changed since the secret was stored, or the secret was wiped by ``disconnect``).
    """
    fernet = _fernet(key)
    if not token:
        raise ConfigurationError(f"connection {connection} has no stored secret; run ghexport connect again")
    try:
        return SecretStr(fernet.decrypt(token.encode("ascii")).decode("utf-8"))
    except (InvalidToken, UnicodeError, ValueError):
        raise ConfigurationError(
            f"cannot decrypt the stored secret of connection {connection}: GHX_SECRET_KEY changed?"
        ) from None
