"""Asset tokens: valid for exactly what they grant, until they expire; altered ones fail."""

from __future__ import annotations

import time

import pytest

from tether.config import Settings
from tether.errors import Forbidden
from tether.resolve import tokens

GRANT = ("object", 7, "img/a b#1.jpg")


def test_a_token_grants_what_it_names_to_its_organization(settings: Settings) -> None:
    token = tokens.issue(settings, 3, GRANT, 60)
    assert tokens.verify(settings, token, GRANT) == 3
    assert tokens.verify(settings, token, list(GRANT)) == 3


@pytest.mark.parametrize(
    "other", [("object", 8, "img/a b#1.jpg"), ("object", 7, "img/a b#2.jpg"), ("local", "x")]
)
def test_a_token_grants_nothing_else(settings: Settings, other: tuple[object, ...]) -> None:
    token = tokens.issue(settings, 3, GRANT, 60)
    with pytest.raises(Forbidden, match="another asset"):
        tokens.verify(settings, token, other)  # type: ignore[arg-type]


def test_an_expired_token_fails(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tokens.issue(settings, 3, GRANT, 5)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 6)
    with pytest.raises(Forbidden, match="expired"):
        tokens.verify(settings, token, GRANT)


@pytest.mark.parametrize("at", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_an_altered_token_fails(settings: Settings, at: float) -> None:
    token = tokens.issue(settings, 3, GRANT, 60)
    # Not the last character: its low bits may be base64 padding that decodes the same.
    cut = int(at * (len(token) - 1))
    flipped = "A" if token[cut] != "A" else "g"
    with pytest.raises(Forbidden):
        tokens.verify(settings, token[:cut] + flipped + token[cut + 1 :], GRANT)
    for junk in ("", "x", "a.b", token + ".", token[:-2]):
        with pytest.raises(Forbidden):
            tokens.verify(settings, junk, GRANT)
