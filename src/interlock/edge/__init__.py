"""The ASGI edge: route table, one module per kind of endpoint, SSE encoding, body limits."""

from .asgi import Gateway

__all__ = ["Gateway"]
