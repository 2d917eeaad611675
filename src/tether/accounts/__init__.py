"""Organizations, users, roles, API keys and web sign-ins.

The names below are the package's public surface (the CLI, the demo and tests use them);
each lives in a small module of its own.
"""

from tether.accounts.keys import (
    LAST_USED_RESOLUTION,
    authenticate,
    create_api_key,
    create_key,
    find_key,
    list_api_keys,
    list_keys,
    record_use,
    revoke_api_key,
    revoke_key,
)
from tether.accounts.orgs import get_or_create_org, get_org
from tether.accounts.roles import ADMIN, MEMBER, ROLES, Caller, require_admin
from tether.accounts.users import (
    create_user,
    get_user,
    invite_user,
    list_users,
    remove_user,
    update_user,
)

__all__ = [
    "ADMIN",
    "LAST_USED_RESOLUTION",
    "MEMBER",
    "ROLES",
    "Caller",
    "authenticate",
    "create_api_key",
    "create_key",
    "create_user",
    "find_key",
    "get_or_create_org",
    "get_org",
    "get_user",
    "invite_user",
    "list_api_keys",
    "list_keys",
    "list_users",
    "record_use",
    "remove_user",
    "require_admin",
    "revoke_api_key",
    "revoke_key",
    "update_user",
]
