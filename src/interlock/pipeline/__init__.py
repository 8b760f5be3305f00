"""The request path: the request as parsed and the context stages fill in (`context`), the Stage
protocol and the chain that runs stages around the router (`runner`, whose docstring says why a
stage wraps the rest rather than having before/after hooks), and what a run produces (`result`)."""

from .context import Endpoint, Request, RequestContext
from .result import Completion, Result, StreamResult
from .runner import Next, Pipeline, Stage

__all__ = [
    "Completion", "Endpoint", "Next", "Pipeline", "Request", "RequestContext", "Result", "Stage", "StreamResult",
]  # fmt: skip
