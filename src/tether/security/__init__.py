"""Passwords (argon2), API keys (random, stored as SHA-256) and secrets at rest (Fernet)."""
