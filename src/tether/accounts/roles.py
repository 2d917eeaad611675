"""The two roles of an organization, and the check every admin-only service starts with.

admin: the organization's users and API keys, the metadata schema, storages and their
credentials, deleting datasets and projects. member: everything else. The check lives in the
services (not only in routes), so the API, the CLI, jobs and the web UI cannot skip it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.errors import Forbidden, Invalid

ADMIN = "admin"
MEMBER = "member"
ROLES = (ADMIN, MEMBER)


@dataclass(frozen=True)
class Caller:
    """Who sends a request: a user of an organization, by API key or by a web sign-in."""

    user_id: int
    org_id: int
    email: str
    role: str
    session_id: int | None = None  # set when signed in with a session cookie

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def check_role(role: str) -> str:
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}; expected one of " + ", ".join(ROLES))
    return role


def require_admin(role: str, action: str) -> None:
    """Raise ``Forbidden`` unless ``role`` is admin; ``action`` completes "only an admin can"."""
    if role != ADMIN:
        raise Forbidden(
            f"only an organization admin can {action}", {"role": role, "required_role": ADMIN}
        )
