"""S3 through an IAM role: tether calls STS AssumeRole with the organization's external ID and
hands the temporary credentials to the store, renewing them before they expire.

Who calls AssumeRole: tether's own AWS identity, which the operator configures --
``TETHER_STS_ACCESS_KEY_ID`` / ``TETHER_STS_SECRET_ACCESS_KEY``, or, with
``TETHER_STS_USE_AMBIENT_CREDENTIALS=true``, the machine's own (instance role, environment).
That identity is used for the AssumeRole call only, never to read a bucket; a customer's
role trusts it with a condition on ``sts:ExternalId`` (the organization's ``external_id``,
which tether generates), so one organization cannot make tether assume another's role.
Without an identity configured, a ``role_arn`` storage is ``invalid_storage_config``.

Credentials are cached per (identity, role, external ID) in this process, and renewed once
less than ``RENEW_BEFORE`` is left, so many stores of one role cost one AssumeRole call an
hour, not one per request.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tether.config import Settings
from tether.storages.base import AccessDenied, StorageError, Unreachable, config_error

RENEW_BEFORE = timedelta(minutes=10)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    token: str = field(repr=False)
    expires_at: datetime

    def as_obstore(self) -> dict[str, Any]:
        return {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "token": self.token,
            "expires_at": self.expires_at,
        }


class _HideCredentials(logging.Filter):
    """botocore logs every response body at DEBUG, AssumeRole's credentials included: not
    those."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg) + " ".join(str(a) for a in record.args or ())
        return "SecretAccessKey" not in text and "SessionToken" not in text


logging.getLogger("botocore.parsers").addFilter(_HideCredentials())

_cache: dict[tuple[str, ...], Credentials] = {}
_lock = threading.Lock()


def _now() -> datetime:
    return datetime.now(UTC)


class RoleCredentials:
    """The obstore credential provider of one role: a callable returning the cached
    credentials, renewed by AssumeRole when they are close to their end."""

    def __init__(
        self,
        settings: Settings,
        role_arn: str,
        external_id: str,
        session_name: str,
        *,
        clock: Clock = _now,
    ) -> None:
        if not external_id:
            raise config_error("an IAM-role storage needs its organization's external ID")
        self.settings = settings
        self.role_arn = role_arn
        self.external_id = external_id
        self.session_name = _session_name(session_name)
        self.clock = clock
        self._key = (_identity(settings), role_arn, external_id)

    def __repr__(self) -> str:
        return f"<RoleCredentials {self.role_arn}>"

    def current(self) -> Credentials:
        with _lock:
            found = _cache.get(self._key)
            if found is not None and found.expires_at - self.clock() > RENEW_BEFORE:
                return found
            fresh = self._assume()
            _cache[self._key] = fresh
            return fresh

    def __call__(self) -> dict[str, Any]:
        return self.current().as_obstore()

    def _assume(self) -> Credentials:
        from botocore.exceptions import BotoCoreError, ClientError

        client = _sts_client(self.settings)
        try:
            answer = client.assume_role(
                RoleArn=self.role_arn,
                RoleSessionName=self.session_name,
                ExternalId=self.external_id,
                DurationSeconds=self.settings.sts_session_minutes * 60,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise AccessDenied(
                f"tether could not assume the role {self.role_arn} ({code}): the role's trust "
                "policy must allow tether's AWS principal with the condition sts:ExternalId = "
                f"{self.external_id}",
                details={"field": "role_arn"},
                code="role_not_assumable",
            ) from None
        except BotoCoreError as exc:
            if "connect" in str(exc).lower():
                raise Unreachable(f"the STS endpoint cannot be reached ({exc})") from None
            raise StorageError(f"STS AssumeRole failed: {exc}") from None
        found = answer["Credentials"]
        return Credentials(
            access_key_id=found["AccessKeyId"],
            secret_access_key=found["SecretAccessKey"],
            token=found["SessionToken"],
            expires_at=_aware(found["Expiration"]),
        )


def _sts_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    kwargs: dict[str, Any] = {
        "region_name": settings.sts_region,
        "config": Config(connect_timeout=10, read_timeout=20, retries={"max_attempts": 2}),
    }
    if settings.sts_endpoint_url:
        kwargs["endpoint_url"] = settings.sts_endpoint_url
    if settings.sts_access_key_id and settings.sts_secret_access_key:
        kwargs["aws_access_key_id"] = settings.sts_access_key_id
        kwargs["aws_secret_access_key"] = settings.sts_secret_access_key.get_secret_value()
    elif not settings.sts_use_ambient_credentials:
        raise config_error(
            "IAM-role storages are not set up on this server: the operator gives tether an AWS "
            "identity to call STS with (TETHER_STS_ACCESS_KEY_ID and "
            "TETHER_STS_SECRET_ACCESS_KEY, or TETHER_STS_USE_AMBIENT_CREDENTIALS=true)",
            field="role_arn",
        )
    return boto3.session.Session().client("sts", **kwargs)


def _identity(settings: Settings) -> str:
    """Which identity calls STS (a digest: the cache key never holds a secret)."""
    secret = settings.sts_secret_access_key
    text = "|".join(
        [
            settings.sts_access_key_id or "ambient",
            secret.get_secret_value() if secret else "",
            settings.sts_endpoint_url or "",
            settings.sts_region,
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _session_name(name: str) -> str:
    """What AssumeRole takes as RoleSessionName: 2-64 of ``[\\w+=,.@-]``."""
    cleaned = re.sub(r"[^\w+=,.@-]", "-", name)[:64]
    return cleaned if len(cleaned) >= 2 else "tether"


def _aware(moment: datetime) -> datetime:
    """In ``datetime.UTC`` itself (obstore refuses botocore's ``tzutc()``)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
