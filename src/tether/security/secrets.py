"""Secrets at rest (storage credentials) are Fernet-encrypted with the configured key."""

from cryptography.fernet import Fernet


def encrypt(key: str, plaintext: str) -> str:
    return Fernet(key.encode()).encrypt(plaintext.encode()).decode()


def decrypt(key: str, token: str) -> str:
    return Fernet(key.encode()).decrypt(token.encode()).decode()
