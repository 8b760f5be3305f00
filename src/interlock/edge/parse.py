"""From an HTTP exchange to a `Request`: the body read within its limit and decoded once, the
fields the gateway relies on checked, the caller's right to the model group, and the headers that
steer protection, caching and rollouts.

The body is decoded with orjson into plain data; that data is what gets forwarded, so fields we
do not model pass through. msgspec checks the fields the gateway relies on. A `template` field
is rendered into the body first (`apply_template`), so everything after the edge, the schema check
included, sees the rendered prompt as if the caller had sent it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import orjson

from ..errors import BadRequest, Forbidden, ModelNotFound
from ..pipeline.context import NO_CACHE_CONTROL, CacheControl, Endpoint, Request
from ..protocol import ChatRequest, CompletionRequest, EmbeddingRequest
from ..security.roles import DATA_CLASSES
from .exchange import Exchange

if TYPE_CHECKING:
    from ..prompts.templates import TemplateBook

SCHEMAS: dict[Endpoint, type[msgspec.Struct]] = {
    Endpoint.CHAT: ChatRequest,
    Endpoint.COMPLETIONS: CompletionRequest,
    Endpoint.EMBEDDINGS: EmbeddingRequest,
}
_QUOTED = re.compile(r"'[^']*'")
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_CONVERSATION = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ModelGroups(Protocol):
    def has(self, model: str) -> bool: ...


class StickySource(Protocol):
    def sticky(self, model: str) -> str | None: ...


class RequestParser:
    def __init__(
        self,
        groups: ModelGroups,
        max_body: int,
        max_messages: int = 2048,
        rollouts: StickySource | None = None,
        templates: TemplateBook | None = None,
        retrieval: bool = False,
    ) -> None:
        self._groups = groups
        self._max_body = max_body
        self._max_messages = max_messages
        self._rollouts = rollouts
        self._templates = templates
        self._retrieval = retrieval  # a retrieval stage exists: `vector_store_ids` means something

    async def parse(self, ex: Exchange, endpoint: Endpoint, deployment: str | None, started: float) -> Request:
        raw = await ex.body(self._max_body)
        data = parse_body(raw, endpoint, deployment, self._templates)
        control = cache_control(ex.headers, data)
        name = data["model"]
        if not self._groups.has(name):
            raise ModelNotFound(f"The model `{name}` does not exist", param="model")
        if not ex.identity.may_call(name):
            raise Forbidden(f"This identity may not call the model `{name}`", param="model")
        self._check_sizes(data, ex.identity.max_tokens)
        ex.model = name  # what an error from here on is counted against
        requested_class, conversation = protection_headers(ex.headers)
        stream = bool(data.get("stream")) and endpoint is not Endpoint.EMBEDDINGS
        sticky = self._sticky_header(name, ex.headers)
        # Positional, in the order of Request's fields (msgspec builds it fastest so).
        return Request(ex.request_id, endpoint, name, data, raw, stream, ex.identity, control, started,
                       requested_class, conversation, sticky)  # fmt: skip

    def _check_sizes(self, data: dict[str, Any], cap: int | None) -> None:
        """The message count limit, and the key's cap on tokens to generate (applied when the
        request names none, refused when it asks for more)."""
        messages = data.get("messages")
        if isinstance(messages, list) and len(messages) > self._max_messages:
            raise BadRequest(f"Too many messages: at most {self._max_messages}", param="messages")
        if not self._retrieval and "vector_store_ids" in data:  # never forwarded upstream unread
            raise BadRequest("vector_store_ids needs a retrieval section", param="vector_store_ids")
        if cap is None or "input" in data:
            return
        asked = data.get("max_completion_tokens") or data.get("max_tokens")
        if asked is None:
            data["max_tokens"] = cap
        elif asked > cap:
            raise BadRequest(f"max_tokens exceeds this key's cap of {cap}", param="max_tokens")

    def _sticky_header(self, model: str, headers: dict[bytes, bytes]) -> str | None:
        """The value of the header a rollout of this group keeps its callers on a version by."""
        sticky = self._rollouts.sticky(model) if self._rollouts is not None else None
        if sticky is None or not sticky.startswith("header:"):
            return None
        value = headers.get(sticky[7:].lower().encode("latin-1"))
        return value.decode("latin-1") if value else None


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying it is not one."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(
            "We could not parse the JSON body of your request. The body must be valid UTF-8 JSON."
        ) from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    return data


def parse_body(
    raw: bytes, endpoint: Endpoint, deployment: str | None, templates: TemplateBook | None = None
) -> dict[str, Any]:
    data = json_object(raw)
    if deployment is not None:
        data["model"] = deployment  # Azure style: the deployment in the path names the model
    if "template" in data:
        apply_template(data, endpoint, templates)
    try:
        msgspec.convert(data, SCHEMAS[endpoint])
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None
    return data


def invalid(exc: msgspec.ValidationError) -> BadRequest:
    """msgspec's validation error as a 400 naming the field: msgspec quotes a bad value
    ("Invalid enum value 'x'"), and what a client sent is never echoed."""
    text = str(exc)
    match = _PATH.search(text)
    param = match.group(1) if match and match.group(1) else None
    return BadRequest(f"Invalid request: {_QUOTED.sub('<value>', text)}", param=param)


def apply_template(data: dict[str, Any], endpoint: Endpoint, templates: TemplateBook | None) -> None:
    """Render the `template` field (`{"name": ..., "variables": {...}}`) into the body, and remove
    it: on chat completions the system part becomes the first message and the user part the last,
    after any `messages` the caller sent; on completions the parts, a blank line between them, are
    the `prompt`, which the caller then sends empty or not at all. (The official `openai` client
    requires `messages` and `prompt`: `messages=[]` and `prompt=""` work with it.)"""
    field = data.pop("template")
    if not isinstance(field, dict) or not isinstance(field.get("name"), str) or field.keys() - {"name", "variables"}:
        raise BadRequest("`template` must be an object with a `name` and `variables`", param="template")
    variables = field.get("variables", {})
    if not isinstance(variables, dict):
        raise BadRequest("`template.variables` must be an object", param="template.variables")
    if endpoint is Endpoint.EMBEDDINGS:
        raise BadRequest("Templates apply to chat completions and completions, not embeddings", param="template")
    if endpoint is Endpoint.COMPLETIONS and data.get("prompt") not in (None, ""):
        raise BadRequest("Send `prompt` or `template`, not both", param="prompt")
    if templates is None:
        raise BadRequest("No templates are configured", param="template.name")
    rendered = templates.render(field["name"], variables)
    if endpoint is Endpoint.COMPLETIONS:
        data["prompt"] = "\n\n".join(p for p in (rendered.system, rendered.user) if p is not None)
        return
    messages = data.get("messages") or []
    if not isinstance(messages, list):
        return  # the schema check names it
    if rendered.system is not None:
        messages.insert(0, {"role": "system", "content": rendered.system})
    if rendered.user is not None:
        messages.append({"role": "user", "content": rendered.user})
    data["messages"] = messages


def cache_control(headers: dict[bytes, bytes], data: dict[str, Any]) -> CacheControl:
    """Per-request cache control: the `Cache-Control` header or a `cache` object in the body
    (`{"no-cache": true, "no-store": true, "ttl": 60}`, as LiteLLM clients send it). The body
    field is removed before the request is forwarded."""
    no_cache = no_store = False
    ttl: int | None = None
    header = headers.get(b"cache-control")
    if header:
        for part in header.decode("latin-1").lower().split(","):
            token = part.strip()
            if token == "no-cache":
                no_cache = True
            elif token == "no-store":
                no_store = True
            elif token.startswith("max-age="):
                ttl = _ttl(token[8:])
    field = data.pop("cache", None)
    if field is not None:
        if not isinstance(field, dict):
            raise BadRequest("`cache` must be an object", param="cache")
        no_cache = no_cache or bool(field.get("no-cache"))
        no_store = no_store or bool(field.get("no-store"))
        if field.get("ttl") is not None:
            ttl = _ttl(field["ttl"])
    threshold = _threshold(headers.get(b"x-interlock-semantic-threshold"))
    if not (no_cache or no_store) and ttl is None and threshold is None:
        return NO_CACHE_CONTROL
    return CacheControl(no_cache, no_store, ttl, threshold)


def _threshold(raw: bytes | None) -> float | None:
    """`x-interlock-semantic-threshold`: a similarity in (0, 1]. Whether it applies (only when it
    is stricter than the group's) is the semantic cache's to decide."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:  # NaN fails this too
        raise BadRequest("x-interlock-semantic-threshold must be a number in (0, 1]")
    return value


def _ttl(value: object) -> int:
    try:
        ttl = int(str(value))
    except (TypeError, ValueError):
        raise BadRequest("cache ttl must be a whole number of seconds", param="cache.ttl") from None
    if ttl < 0:
        raise BadRequest("cache ttl must not be negative", param="cache.ttl")
    return ttl


def protection_headers(headers: dict[bytes, bytes]) -> tuple[str | None, str | None]:
    """`x-interlock-data-class` (at least this sensitive) and `x-interlock-conversation` (the
    scope in which tokenized values keep the same token)."""
    raw_class = headers.get(b"x-interlock-data-class")
    requested = raw_class.decode("latin-1").strip().lower() if raw_class else None
    if requested is not None and requested not in DATA_CLASSES:
        raise BadRequest(f"x-interlock-data-class must be one of {', '.join(DATA_CLASSES)}")
    raw_conversation = headers.get(b"x-interlock-conversation")
    conversation = raw_conversation.decode("latin-1") if raw_conversation else None
    if conversation is not None and not _CONVERSATION.fullmatch(conversation):
        raise BadRequest("x-interlock-conversation must be 1-128 letters, digits or . _ : -")
    return requested, conversation
