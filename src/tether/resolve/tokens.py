"""Short-lived signed tokens that let a browser load one asset through tether without
headers (an ``<img>`` or ``<video>`` tag sends none): the token names the organization and
what it grants (a storage's object, a local file), and when it expires.

Signed with itsdangerous (HMAC-SHA1 keyed by the server's secret key, under a salt of its
own, so no other signature tether makes can pass as one); the expiry travels inside the
signed payload, so each token carries its own lifetime (a storage's
``signed_url_ttl_minutes``). Not encrypted: a token shows what it grants, never a secret.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from itsdangerous import BadSignature, URLSafeSerializer

from tether.config import Settings
from tether.errors import Forbidden

_SALT = "tether.resolve.asset"
Grant = Sequence[str | int]  # what a token grants: ("object", storage id, key), ("local", d)


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.fernet_key(), salt=_SALT)


def issue(settings: Settings, org_id: int, grant: Grant, ttl_seconds: int) -> str:
    """A token granting ``grant`` to whoever holds it, for ``ttl_seconds``."""
    expires = int(time.time()) + max(1, int(ttl_seconds))
    return str(_serializer(settings).dumps([org_id, list(grant), expires]))


def verify(settings: Settings, token: str, grant: Grant) -> int:
    """The organization a valid, unexpired token for exactly ``grant`` was issued to;
    ``Forbidden`` for any other token (altered, expired, for something else)."""
    return verify_until(settings, token, grant)[0]


def verify_until(settings: Settings, token: str, grant: Grant) -> tuple[int, int]:
    """``verify``, and when the token expires (Unix seconds): what a response streamed on
    its authority may be cached for."""
    try:
        org_id, granted, expires = _serializer(settings).loads(token)
    except (BadSignature, ValueError, TypeError):
        raise Forbidden("the token is not valid (altered, or not made by this server)") from None
    if not isinstance(expires, int) or expires < time.time():
        raise Forbidden("the token has expired: resolve the row again for a fresh URL")
    if list(granted) != list(grant) or not isinstance(org_id, int):
        raise Forbidden("the token was issued for another asset")
    return org_id, expires
