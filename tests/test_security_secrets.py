"""Secrets in settings: the secret key is a secret type, and a password inside a database or
queue URL never shows in a repr, an error, a log line or the CLI's output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from tether.config import Settings
from tether.security.secrets import redact_url

PASSWORD = "S3cr3t-pw-x9"  # distinctive, so a leak anywhere is found by substring

REDACTIONS = [
    ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:pw@h:5432/db?sslmode=require", "postgresql://u:***@h:5432/db?sslmode=require"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("postgresql://h/db?user=u&password=pw", "postgresql://h/db?user=u&password=***"),
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://default:pw@h:6379/0", "redis://default:***@h:6379/0"),
    ("rediss://u:p%40ss@h/0", "rediss://u:***@h/0"),
    ("sqlite:////var/lib/tether/tether.db", "sqlite:////var/lib/tether/tether.db"),
    ("https://h/x?token=abc&keep=1", "https://h/x?token=***&keep=1"),
    ("postgresql://u:pw@h:notaport/db", "postgresql://***"),  # unparsable: mask it all
    ("sqlite:///relative.db", "sqlite:///relative.db"),
]


@pytest.mark.parametrize(("url", "expected"), REDACTIONS)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_a_password_with_an_at_sign_is_masked_whole() -> None:
    masked = redact_url(f"postgresql://u:{PASSWORD}@x@h/db")
    assert masked == "postgresql://u:***@h/db"


def test_the_secret_key_is_a_secret() -> None:
    settings = Settings(secret_key=PASSWORD)
    assert isinstance(settings.secret_key, SecretStr)
    assert settings.fernet_key() == PASSWORD
    for shown in (repr(settings), str(settings), repr(settings.secret_key), f"{settings}"):
        assert PASSWORD not in shown


URL_SETTINGS = [
    {"database_url": f"postgresql://tether:{PASSWORD}@db.internal:5432/tether"},
    {"queue_url": f"redis://:{PASSWORD}@cache.internal:6379/0"},
    {"public_url": f"https://u:{PASSWORD}@tether.example"},
]


@pytest.mark.parametrize("values", URL_SETTINGS)
def test_settings_repr_masks_url_passwords(values: dict[str, str]) -> None:
    settings = Settings(**values)
    for shown in (repr(settings), str(settings)):
        assert PASSWORD not in shown
        assert "***" in shown
    # the value itself is intact: only its display is masked
    name, value = next(iter(values.items()))
    assert getattr(settings, name) == value


REFUSED = [
    {"secret_key": "change-me"},
    {"database_url": f"postgresql://u:{PASSWORD}@h:port/db"},
    {"port": f"80{PASSWORD}"},
    {"queue_url": f"amqp://u:{PASSWORD}@h/"},
]


@pytest.mark.parametrize("values", REFUSED)
def test_refused_settings_never_echo_their_value(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value.errors(include_input=False))


def test_a_placeholder_secret_key_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="TETHER_SECRET_KEY is a placeholder"):
        Settings(secret_key="change-me")


def test_engine_errors_and_logs_carry_no_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An app pointed at a PostgreSQL that refuses connections: the error and every log line
    name the host, never the password."""
    from tether.api.app import create_app

    caplog.set_level(logging.DEBUG)
    settings = Settings(
        data_dir=tmp_path,
        queue_url="immediate",
        database_url=f"postgresql://tether:{PASSWORD}@127.0.0.1:1/tether",
    )
    with pytest.raises(Exception) as caught:
        create_app(settings)
    assert "127.0.0.1" in str(caught.value)
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value)
    assert PASSWORD not in caplog.text


CLI_URLS = [
    (f"postgresql://tether:{PASSWORD}@127.0.0.1:1/tether", "cannot use the database"),
    (f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/no_such_db_x", "does not exist"),
    (f"postgresql://tether:{PASSWORD}@127.0.0.1:port/tether", "does not parse"),
]


@pytest.mark.parametrize(("url", "said"), CLI_URLS)
def test_cli_output_carries_no_password(tmp_path: Path, url: str, said: str) -> None:
    tether = Path(sys.executable).with_name("tether")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "TETHER_DATA_DIR": str(tmp_path),
        "TETHER_DATABASE_URL": url,
    }
    done = subprocess.run(
        [str(tether), "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert said in output
    assert PASSWORD not in output
