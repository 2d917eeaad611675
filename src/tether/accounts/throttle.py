"""A modest brake on password guessing: after a few failed sign-ins for one email (or many
from one client address) within a window, sign-ins for it are refused until the window
passes -- whether or not the email belongs to anyone, so the brake reveals nothing.

The counts live in the server process (a restart forgets them); that is enough to turn
an online guessing attack from thousands of tries a minute into a handful.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from tether.errors import RateLimited

MAX_TRACKED = 10_000  # keys kept at most; the oldest windows go first


class SignInThrottle:
    def __init__(
        self,
        per_email: int = 5,
        per_client: int = 20,
        window_seconds: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_email, self.per_client, self.window = per_email, per_client, window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[float, int]] = {}  # key -> (window start, count)

    def check(self, email: str, client: str | None) -> None:
        """Raise ``RateLimited`` when either key has used up its failures."""
        with self._lock:
            for key, limit in self._keys(email, client):
                started, count = self._current(key)
                if count >= limit:
                    wait = math.ceil(started + self.window - self._clock())
                    raise RateLimited(
                        f"too many failed sign-ins; try again in {wait} seconds",
                        {"retry_after": wait},
                    )

    def failed(self, email: str, client: str | None) -> None:
        with self._lock:
            for key, _limit in self._keys(email, client):
                started, count = self._current(key)
                self._failures[key] = (started, count + 1)
            self._prune()

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._failures.pop(f"email:{email}", None)

    def _keys(self, email: str, client: str | None) -> list[tuple[str, int]]:
        keys = [(f"email:{email}", self.per_email)]
        if client:
            keys.append((f"client:{client}", self.per_client))
        return keys

    def _current(self, key: str) -> tuple[float, int]:
        now = self._clock()
        started, count = self._failures.get(key, (now, 0))
        return (now, 0) if now - started >= self.window else (started, count)

    def _prune(self) -> None:
        if len(self._failures) <= MAX_TRACKED:
            return
        now = self._clock()
        for key, (started, _) in list(self._failures.items()):
            if now - started >= self.window:
                del self._failures[key]
        excess = len(self._failures) - MAX_TRACKED * 9 // 10  # room, so this runs seldom
        oldest = sorted(self._failures, key=lambda k: self._failures[k][0])
        for key in oldest[: max(excess, 0)]:
            del self._failures[key]
