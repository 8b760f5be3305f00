"""Roles and what they allow. Pure data: a role is a name for a set of permissions."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class Permission(enum.StrEnum):
    INVOKE = "invoke"  # call model groups (those the identity is allowed)
    READ_METRICS = "read_metrics"
    READ_AUDIT = "read_audit"
    ADMIN_KEYS = "admin_keys"
    ADMIN_ROLLOUTS = "admin_rollouts"
    ADMIN_CONFIG = "admin_config"
    # Upload and delete files, create, change and delete vector stores, attach and detach files
    # (reading them and searching is `invoke`).
    MANAGE_FILES = "manage_files"
    # See the values DLP tokenized in stored documents: de-tokenized search results and
    # citations, a file's content as uploaded.
    READ_PII = "read_pii"


ALL = frozenset(Permission)

DEFAULT_ROLES: Mapping[str, frozenset[Permission]] = {
    "admin": ALL,
    "operator": frozenset({Permission.READ_METRICS, Permission.READ_AUDIT, Permission.ADMIN_ROLLOUTS}),
    "auditor": frozenset({Permission.READ_AUDIT, Permission.READ_METRICS}),
    "user": frozenset({Permission.INVOKE, Permission.MANAGE_FILES}),
}

DATA_CLASSES = ("public", "internal", "confidential", "restricted")


def class_rank(name: str) -> int:
    return DATA_CLASSES.index(name)


def permissions_of(roles: Iterable[str], table: Mapping[str, frozenset[Permission]]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= table.get(role, frozenset())
    return frozenset(granted)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling, as the rest of the gateway sees it. Never holds the credential itself."""

    subject: str  # a key id, or the token's subject
    kind: str  # "key", "oidc" or "open" (no auth configured, loopback only)
    tenant: str
    roles: tuple[str, ...]
    permissions: frozenset[Permission]
    models: frozenset[str] | None = None  # None: every model group
    max_class: str = "internal"
    rpm: int | None = None
    tpm: int | None = None
    max_tokens: int | None = None
    budget: float | None = None  # USD per budget period

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    def may_call(self, model: str) -> bool:
        return Permission.INVOKE in self.permissions and (self.models is None or model in self.models)


OPEN = Identity(
    subject="open", kind="open", tenant="default", roles=("admin",), permissions=ALL, max_class="restricted"
)
