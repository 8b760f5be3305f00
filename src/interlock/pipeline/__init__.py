"""The request path: a RequestContext, the Stage protocol and the runner that drives stages."""

from .context import Endpoint, RequestContext
from .result import Completion, Result, StreamResult
from .runner import Pipeline, Stage

__all__ = ["Completion", "Endpoint", "Pipeline", "RequestContext", "Result", "Stage", "StreamResult"]
