"""One module per backend kind. Each provider turns a forwarded request into an upstream call
over a Transport (`transport.py`): the native pool by default, aiohttp when a proxy is needed."""

from .base import Provider, UpstreamAnswer
from .transport import RequestHeaders, Timeouts, Transport

__all__ = ["Provider", "RequestHeaders", "Timeouts", "Transport", "UpstreamAnswer"]
