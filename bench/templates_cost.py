"""What prompt templates cost a request, measured in process (no sockets, no wrk): run it alone,
under the bench lock, and compare figures from one run only.

    flock /tmp/interlock-bench.lock env PYTHONPATH=src:bench .venv/bin/python bench/templates_cost.py

The template: a system part of about 1.5 KB naming two variables, a user part of about 300
characters naming two more (the ticket text is the request's own). The variants of each part
run in alternating rounds, and each keeps its least disturbed round.

1. `TemplateBook.render`: the system part kept by its variables (the same values as the last
   request), the same with the LRU off (`cache_entries=0`: rendered every time), both for a system
   part of plain `{{ name }}` substitutions (joined, without Jinja) and for the same part with a
   filter in it (rendered by Jinja), and a system part without variables (rendered once at start);
   and Jinja's own `Template.render` of the plain part, for comparison.
2. `parse_body`: the templated body against the same request written out, as the edge pays it.
3. A whole cache hit through the ASGI app, the templated body against the written-out one (the two
   are one request to the cache), in alternating rounds, each keeping its least disturbed round.
4. What a precomputed digest of the system prefix could save the exact cache's key: `cache_key`
   of the rendered body against the same body with the system text replaced by a 32-character
   digest, and BLAKE2b of the system text alone; for the 1.5 KB system part and one of 16 KB.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
import timeit
from typing import Any

import orjson
import uvloop
from telemetry_cost import call, upstream  # the same canned upstream and ASGI call (bench/ is on the path)

from interlock.app import build
from interlock.cache.keys import cache_key
from interlock.config import TemplateSettings, parse_settings
from interlock.edge.parse import parse_body
from interlock.pipeline.context import Endpoint
from interlock.prompts.templates import TemplateBook, environment

RULES = (
    "Read the ticket below and write a summary for the {{ team }} team of at most five sentences. "
    "Name the product, what the customer expected, what happened instead and what they ask for. "
    "Do not guess at causes; say when the ticket does not tell. Keep the customer's own words for "
    "error messages. Answer in {{ language }}. "
)
SYSTEM = "You are the support desk's summariser. " + RULES * 4  # about 1.5 KB rendered
USER = "Ticket {{ ticket_id }} from a customer on the {{ plan }} plan:\n{{ ticket }}"
TEMPLATES = {
    "summary": TemplateSettings(system=SYSTEM, user=USER),
    "filtered": TemplateSettings(system=SYSTEM.replace("{{ team }}", "{{ team | title }}"), user=USER),
    "fixed": TemplateSettings(system=SYSTEM.replace("{{ team }}", "billing").replace("{{ language }}", "English"),
                              user=USER),
}  # fmt: skip
TICKET = "My invoice for March shows two charges for the same seat. I was told it would be refunded. " * 3
VARIABLES = {"team": "billing", "language": "English", "ticket_id": 4711, "plan": "team", "ticket": TICKET}
FIXED_VARIABLES = {k: v for k, v in VARIABLES.items() if k not in ("team", "language")}


def least_us(fns: dict[str, Any], number: int = 20_000, rounds: int = 9) -> dict[str, float]:
    """µs per call of each, in alternating rounds, the least disturbed round of each kept (a busy
    machine moves them together)."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            took = timeit.timeit(fn, number=number) / number * 1e6
            best[name] = min(best.get(name, took), took)
    return best


def templated_body() -> dict[str, Any]:
    return {"model": "hit", "temperature": 0, "messages": [],
            "template": {"name": "summary", "variables": VARIABLES}}  # fmt: skip


def written_out(book: TemplateBook) -> dict[str, Any]:
    rendered = book.render("summary", VARIABLES)
    return {"model": "hit", "temperature": 0, "messages": [
        {"role": "system", "content": rendered.system}, {"role": "user", "content": rendered.user}]}  # fmt: skip


def render_costs() -> dict[str, float]:
    kept, every, fixed = TemplateBook(TEMPLATES), TemplateBook(TEMPLATES, cache_entries=0), TemplateBook(TEMPLATES)
    jinja = environment().from_string(SYSTEM)
    figures = least_us(
        {
            "render, plain system kept": lambda: kept.render("summary", VARIABLES),
            "render, plain system every time": lambda: every.render("summary", VARIABLES),
            "render, filtered system kept": lambda: kept.render("filtered", VARIABLES),
            "render, filtered system every time": lambda: every.render("filtered", VARIABLES),
            "render, system without variables": lambda: fixed.render("fixed", FIXED_VARIABLES),
            "jinja Template.render of the plain system": lambda: jinja.render(VARIABLES),
        }
    )
    assert kept.stats.system_rendered == 2 and every.stats.system_rendered == every.stats.rendered
    return figures


def parse_costs() -> dict[str, float]:
    book = TemplateBook(TEMPLATES)
    raw_templated, raw_plain = orjson.dumps(templated_body()), orjson.dumps(written_out(book))
    assert parse_body(raw_templated, Endpoint.CHAT, None, book) == orjson.loads(raw_plain)
    return least_us(
        {
            "parse_body, written out": lambda: parse_body(raw_plain, Endpoint.CHAT, None, book),
            "parse_body, templated": lambda: parse_body(raw_templated, Endpoint.CHAT, None, book),
        }
    )


def key_costs() -> dict[str, float]:
    fns: dict[str, Any] = {}
    for label, repeat in (("1.5 KB", 1), ("16 KB", 11)):
        body = written_out(TemplateBook({"summary": TemplateSettings(system=SYSTEM * repeat, user=USER)}))
        system = body["messages"][0]["content"]
        digest = hashlib.blake2b(system.encode(), digest_size=16).hexdigest()
        prefixed = {**body, "messages": [{"role": "system", "content": digest}, body["messages"][1]]}
        fns |= {
            f"cache_key, {label} system": lambda b=body: cache_key("t", Endpoint.CHAT, b),
            f"cache_key, {label} system as a digest": lambda b=prefixed: cache_key("t", Endpoint.CHAT, b),
            f"blake2b of the {label} system": lambda t=system: hashlib.blake2b(t.encode(), digest_size=16).digest(),
        }
    return least_us(fns, number=5_000)


async def hit_costs(requests: int, rounds: int) -> dict[str, float]:
    server = await upstream()
    port = server.sockets[0].getsockname()[1]
    raw: dict[str, Any] = {
        "models": [{"name": "hit", "deployments": [{"id": "d", "backend": "openai",
                                                     "api_base": f"http://127.0.0.1:{port}/v1"}]}],
        "templates": {"summary": {"system": SYSTEM, "user": USER}},
        "server": {"gc_freeze": False},
    }  # fmt: skip
    app = build(parse_settings(raw))
    await app._on_startup()
    bodies = {
        "cache hit, written out": orjson.dumps(written_out(TemplateBook(TEMPLATES))),
        "cache hit, templated": orjson.dumps(templated_body()),
    }
    best: dict[str, float] = {}
    try:
        for body in bodies.values():
            for _ in range(300):
                await call(app, body=body)  # the first fills the cache the second hits too
        for _ in range(rounds):
            for name, body in bodies.items():
                started = time.perf_counter()
                for _ in range(requests):
                    await call(app, body=body)
                    await asyncio.sleep(0)
                took = (time.perf_counter() - started) / requests * 1e6
                best[name] = min(best.get(name, took), took)
    finally:
        await app._on_shutdown()
        server.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    figures = {**render_costs(), **parse_costs(), **key_costs()}
    figures.update(uvloop.run(hit_costs(args.requests, args.rounds)))
    for name, us in figures.items():
        print(f"  {name:<44} {us:7.2f} us")


if __name__ == "__main__":
    main()
