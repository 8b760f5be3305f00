"""Identity and access: API keys (stored as HMACs), OIDC bearer tokens, roles and permissions.

PII detection, DLP, limits and the audit trail arrive with the rest of the security issue.
"""

from .auth import Authenticator
from .roles import OPEN, Identity, Permission

__all__ = ["OPEN", "Authenticator", "Identity", "Permission"]
