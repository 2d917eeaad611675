"""API keys: 256 random bits shown once; only their SHA-256 is stored.

A fast hash is right here (unlike passwords): the key is random, so there is nothing to guess,
and every request must look it up.
"""

import hashlib
import secrets

PREFIX = "tth_"


def generate_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
