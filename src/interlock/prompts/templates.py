"""Named prompt templates: compiled once at start, rendered per request at the edge.

A template is configuration (`templates.<name>.system` and `.user` in the config file), its
variables are the caller's data. Jinja2's `SandboxedEnvironment` compiles them, so whoever may edit
the config may still not reach into Python through a template (`{{ x.__class__.__mro__ }}` is
refused); `StrictUndefined` turns a variable left out into an error rather than an empty string;
autoescaping is off, as this is text for a model, not HTML.

Every variable a template names is required: the names are found once, at compile time
(`jinja2.meta.find_undeclared_variables`), and a request is checked against them before anything
renders, so a 400 can name what is missing (never a value: variables may hold PII). Variables the
template does not use are refused too, for the same reason unknown config keys are: a misspelt
name should not be dropped in silence. Values are strings, numbers or booleans.

A part without variables is rendered once, here at start. A system part with variables is kept by
its variables in a small LRU bounded in entries and characters: applications send the same system
prompt with the same few values on request after request, and the same text comes back (the very
same `str` object: one copy, however many requests hold it). It pays most for parts Jinja
renders (measured, 16 µs a request against 2 µs kept), less for plain substitutions (4 µs against
2 µs). The user part is the
per-request part and is rendered every time. The exact cache still hashes the rendered text for
its key: a digest of the system text kept here would save it about 1.2 µs a KB (bench/RESULTS.md),
but only if every key hashed system messages apart, so that a templated request and the same
request written out still meet; not done while system prompts are a few KB.

The templates do not change while the process runs, so the same request bytes always render the
same body: DLP's memory of bodies it found clean, kept by a digest of the bytes as they arrived,
stays right for templated requests.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import msgspec
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from ..config import LABEL, TemplateSettings
from ..errors import BadRequest, ConfigError

SYSTEM_CACHE_ENTRIES = 256
SYSTEM_CACHE_CHARS = 4 * 1024 * 1024  # rendered text and string variables of every entry together
_SCALARS = (str, int, float, bool)
_MAX_SHOWN_NAME = 64


def environment() -> SandboxedEnvironment:
    """The one environment templates are compiled in, so the config check and the book agree."""
    return SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)


def template_problem(source: str) -> str | None:
    """Why `source` is not a usable template, or None: it does not compile (Jinja's message and
    line, about the config's own text), or, having no variables, it fails to render."""
    env = environment()
    try:
        _Part(env, source)
    except TemplateSyntaxError as exc:
        return f"does not compile: line {exc.lineno}: {exc.message}"
    except Exception as exc:  # a template without variables rendered at start: Jinja's or Python's error
        return f"does not render: {type(exc).__name__}"
    return None


class Rendered(msgspec.Struct, frozen=True):
    system: str | None
    user: str | None


class TemplateStats(msgspec.Struct, frozen=True):
    """Counted since start: requests rendered, and how each one's system part was had."""

    rendered: int  # requests whose template rendered
    system_rendered: int  # system parts rendered for a request
    system_reused: int  # system parts taken as rendered before (at start, or the LRU)


class _Part:
    """One compiled part, the variables it names, and its text when it names none.

    A part that is only text and plain `{{ name }}` substitutions (most prompts) is rendered by
    joining its pieces, as Jinja's compiled code would (`str()` of each value, autoescaping off):
    Jinja's own render builds a context for every call, about 10 µs against well under one here
    (bench/templates_cost.py). Anything more (filters, tests, loops, expressions) renders through
    Jinja."""

    __slots__ = ("fixed", "names", "ordered", "pieces", "template")

    def __init__(self, env: SandboxedEnvironment, source: str) -> None:
        ast = env.parse(source)
        self.names = frozenset(meta.find_undeclared_variables(ast) - env.globals.keys())
        self.ordered = tuple(sorted(self.names))
        self.pieces = _substitutions(ast, self.names)
        self.template: Template = env.from_string(ast)
        self.fixed = self.template.render() if not self.names else None

    def render(self, variables: Mapping[str, Any]) -> str:
        if self.fixed is not None:
            return self.fixed
        if self.pieces is not None:
            return "".join([str(variables[text]) if is_name else text for is_name, text in self.pieces])
        return self.template.render(variables)


def _substitutions(ast: nodes.Template, names: frozenset[str]) -> tuple[tuple[bool, str], ...] | None:
    """The template as (is a variable, text or name) pieces, when it is nothing but literal text
    and `{{ name }}` of its own variables; None otherwise."""
    pieces: list[tuple[bool, str]] = []
    for node in ast.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                pieces.append((False, child.data))
            elif isinstance(child, nodes.Name) and child.ctx == "load" and child.name in names:
                pieces.append((True, child.name))
            else:
                return None
    return tuple(pieces)


class _Compiled:
    __slots__ = ("names", "ordered", "system", "user")

    def __init__(self, system: _Part | None, user: _Part | None) -> None:
        self.system = system
        self.user = user
        self.names = (system.names if system else frozenset()) | (user.names if user else frozenset())
        self.ordered = tuple(sorted(self.names))  # in messages, in this order


def _cache_key(value: object) -> object:
    """A variable's value as the LRU keys it: a string as itself, anything else by type and repr,
    because `1 == 1.0 == True` and `0.0 == -0.0` compare and hash equal but render differently."""
    return value if type(value) is str else (type(value), repr(value))


def _shown(names: list[str]) -> str:
    """Names a caller sent, for an error message: identifiers are named, anything else (which
    could be data put where a name goes) is only counted."""
    named = [f"`{n}`" for n in names if n.isidentifier() and len(n) <= _MAX_SHOWN_NAME]
    others = len(names) - len(named)
    if others:
        named.append(f"{others} other name{'s' if others > 1 else ''}")
    return ", ".join(named)


def shown_template_name(name: str) -> str:
    """A template name a caller sent, for an error message: named when it could be one (the
    config's rule for names), otherwise not repeated."""
    return f"`{name}`" if LABEL.fullmatch(name) else "(not a template name)"


class TemplateBook:
    """The configured templates, compiled; `render` is called by the edge's parser for every
    request that names one. Not thread-safe: it runs on the event loop, as the parser does
    (rendering a prompt of a few KB takes microseconds; the bench figures are in bench/RESULTS.md)."""

    def __init__(
        self,
        templates: Mapping[str, TemplateSettings],
        cache_entries: int = SYSTEM_CACHE_ENTRIES,
        cache_chars: int = SYSTEM_CACHE_CHARS,
    ) -> None:
        env = environment()
        self._templates = {name: self._compile(env, name, t) for name, t in templates.items()}
        self._systems: OrderedDict[tuple[object, ...], tuple[str, int]] = OrderedDict()
        self._cache_entries = cache_entries
        self._cache_chars = cache_chars
        self._chars = 0
        self._rendered = self._system_rendered = self._system_reused = 0

    @staticmethod
    def _compile(env: SandboxedEnvironment, name: str, settings: TemplateSettings) -> _Compiled:
        parts: list[_Part | None] = []
        for key, source in (("system", settings.system), ("user", settings.user)):
            try:
                parts.append(_Part(env, source) if source is not None else None)
            except Exception as exc:  # checked when the config loaded; Jinja's or Python's error
                raise ConfigError(f"$.templates.{name}.{key}: does not compile: {type(exc).__name__}") from None
        return _Compiled(*parts)

    def variables(self, name: str) -> frozenset[str] | None:
        """The variables the template `name` names (every one required), or None without it."""
        template = self._templates.get(name)
        return None if template is None else template.names

    @property
    def stats(self) -> TemplateStats:
        return TemplateStats(self._rendered, self._system_rendered, self._system_reused)

    def render(self, name: str, variables: Mapping[str, object]) -> Rendered:
        """The template's parts rendered with `variables`, or a 400 naming the template, the
        variables missing or unknown, or the variable of the wrong type (never a value)."""
        template = self._templates.get(name)
        if template is None:
            raise BadRequest(f"Unknown template {shown_template_name(name)}", param="template.name")
        self._check(name, template, variables)
        try:
            system = None if template.system is None else self._system(name, template.system, variables)
            user = None if template.user is None else template.user.render(variables)
        except Exception as exc:  # Jinja's and Python's errors from rendering, as a 400 without values
            raise BadRequest(
                f"Template `{name}` could not be rendered with these variables ({type(exc).__name__})",
                param="template.variables",
            ) from None
        self._rendered += 1
        return Rendered(system, user)

    @staticmethod
    def _check(name: str, template: _Compiled, variables: Mapping[str, object]) -> None:
        if variables.keys() != template.names:  # one comparison of sets in the common case
            missing = [n for n in template.ordered if n not in variables]
            if missing:
                listed = ", ".join(f"`{n}`" for n in missing)
                raise BadRequest(f"Template `{name}` is missing variables: {listed}", param="template.variables")
            unknown = sorted(n for n in variables if n not in template.names)
            raise BadRequest(f"Template `{name}` has no variables named {_shown(unknown)}", param="template.variables")
        for n, value in variables.items():
            if type(value) not in _SCALARS:
                raise BadRequest(
                    f"Template variable `{n}` must be a string, a number or a boolean", param=f"template.variables.{n}"
                )

    def _system(self, name: str, part: _Part, variables: Mapping[str, object]) -> str:
        if part.fixed is not None:
            self._system_reused += 1
            return part.fixed
        key = (name, *(_cache_key(variables[n]) for n in part.ordered))
        kept = self._systems.get(key)
        if kept is not None:
            self._systems.move_to_end(key)
            self._system_reused += 1
            return kept[0]
        text = part.render(variables)
        self._system_rendered += 1
        self._keep(key, text)
        return text

    def _keep(self, key: tuple[object, ...], text: str) -> None:
        """Into the LRU, evicting the least recently used; an entry over a sixteenth of the
        character budget is not kept (it would push out many others)."""
        size = len(text) + sum(len(k) for k in key[1:] if type(k) is str)
        if self._cache_entries <= 0 or size > self._cache_chars // 16:
            return
        systems = self._systems
        while systems and (len(systems) >= self._cache_entries or self._chars + size > self._cache_chars):
            _, (_, dropped) = systems.popitem(last=False)
            self._chars -= dropped
        systems[key] = (text, size)
        self._chars += size
