"""One module per backend kind. Each provider turns a forwarded request into an upstream call."""

from .base import Provider, UpstreamAnswer
from .http import HttpUpstream

__all__ = ["HttpUpstream", "Provider", "UpstreamAnswer"]
