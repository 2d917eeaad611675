"""Secrets at rest (storage credentials) are Fernet-encrypted with the configured key, and
secrets inside URLs (a database or Redis password) are masked wherever a URL is shown."""

from __future__ import annotations

from urllib.parse import urlsplit

from cryptography.fernet import Fernet

MASK = "***"


def encrypt(key: str, plaintext: str) -> str:
    return Fernet(key.encode()).encrypt(plaintext.encode()).decode()


def decrypt(key: str, token: str) -> str:
    return Fernet(key.encode()).decrypt(token.encode()).decode()


def redact_url(url: str | None) -> str | None:
    """``url`` with its password (and any query value named like a secret) replaced by
    ``***``: safe for a repr, a log line or an error message. A URL that does not parse is
    masked after its scheme, since the password could be anywhere in it."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://{MASK}" if scheme else MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{userinfo}@{host}"
    query = "&".join(_redact_param(p) for p in parts.query.split("&"))
    out = url if netloc == parts.netloc else url.replace(parts.netloc, netloc, 1)
    return out if query == parts.query else out.replace("?" + parts.query, "?" + query, 1)


SECRET_PARAMS = ("password", "passwd", "pwd", "secret", "token", "key")


def _redact_param(param: str) -> str:
    name, sep, _value = param.partition("=")
    if sep and any(word in name.lower() for word in SECRET_PARAMS):
        return f"{name}={MASK}"
    return param
