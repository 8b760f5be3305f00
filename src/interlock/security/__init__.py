"""Security: who is calling, what they may do, what their requests carry, and the record of it.

Identity and access: API keys stored as HMACs (`keys`, `keystore`, `keyadmin`), OIDC bearer
tokens (`oidc`), roles and permissions (`roles`), resolved per request by `auth`. Secrets by
reference in the config (`secrets`). Data protection: PII and secret detection (`pii/`), DLP
policies with masking, redaction, tokenization and data classes (`dlp`). Rate limits, tokens per
minute and spend budgets (`limits`, `limit_stage`). The hash-chained audit trail (`audit`).
"""

from .auth import Authenticator
from .roles import OPEN, Identity, Permission

__all__ = ["OPEN", "Authenticator", "Identity", "Permission"]
