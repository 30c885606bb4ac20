"""Credentials at rest: encrypted with Fernet under a key from `PIXSIM_CREDENTIALS_KEY`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from pixsim_provider_sdk import scrub as scrub_secrets
from pixsim_provider_sdk import secret_values


class CredentialCipher:
    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, credentials: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(credentials).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValueError(
                "stored credentials cannot be decrypted: PIXSIM_CREDENTIALS_KEY changed?"
            ) from None

    def __repr__(self) -> str:
        return "CredentialCipher(<key hidden>)"


def scrub(text: str, credentials: Any) -> str:
    """`text` with every credential value replaced by `***` (the SDK's one rule of what is a secret):
    for messages that may echo a secret back."""
    return scrub_secrets(text, secret_values(credentials))


def cipher_from_env(key_file: str | os.PathLike[str] | None = None) -> CredentialCipher:
    """The key from `PIXSIM_CREDENTIALS_KEY`, else from `key_file` (created if missing, for local runs)."""
    key = os.environ.get("PIXSIM_CREDENTIALS_KEY")
    if key:
        return CredentialCipher(key)
    path = Path(key_file or os.environ.get("PIXSIM_CREDENTIALS_KEY_FILE", ".pixsim/credentials.key"))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return CredentialCipher(path.read_bytes().strip())
