"""Memory probe: the real gateway (interlock.app.build) plus GET /__mem, for leak hunting.

    .venv/bin/python bench/experiments/memprobe.py CONFIG.yaml PORT

GET /__mem?collect=1&census=1&trace=start|snap&trim=1 returns JSON:
  rss_kb, gc counts, len(gc.get_objects()), sys.getallocatedblocks(), glibc mallinfo2,
  collect=1   gc.collect() first (reports what it freed, then the numbers after it)
  census=1    objects in gc.get_objects() by type, and the change since the previous census
  trace=start tracemalloc.start(FRAMES) (env MEMPROBE_FRAMES, default 12), baseline snapshot
  trace=snap  snapshot; top growth by traceback vs the baseline and vs the previous snapshot
  trim=1      malloc_trim(0) afterwards (how much RSS is free memory glibc kept)
  garbage=1   gc.DEBUG_SAVEALL + collect: what the collector frees, by type, exception, frame
  internals=1 sizes of the gateway's own containers (pool idle lists, caches, tasks)
Nothing under src/ changes; this only wraps the ASGI app.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import itertools
import os
import sys
import tracemalloc
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn

from interlock.app import build
from interlock.config import load_settings

libc = ctypes.CDLL("libc.so.6")


class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]  # fmt: skip


libc.mallinfo2.restype = MallInfo2


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def mallinfo() -> dict[str, int]:
    m = libc.mallinfo2()
    return {"arena": m.arena, "in_use": m.uordblks, "free": m.fordblks, "mmap": m.hblkhd}


def typename(o: object) -> str:
    t = type(o)
    return f"{t.__module__}.{t.__qualname__}"


def edge(src: Any, dst: Any) -> str:
    """How src refers to dst, as far as cheaply known."""
    if isinstance(src, type(sys._getframe())):
        for k, v in src.f_locals.items():
            if v is dst:
                return f"{src.f_code.co_name}:{src.f_lineno} local {k}"
        return f"{src.f_code.co_name}:{src.f_lineno} (frame)"
    if isinstance(src, dict):
        for k, v in src.items():
            if v is dst:
                return f"[{k!r}]"
    for name in getattr(type(src), "__slots__", ()) or ():
        if getattr(src, name, None) is dst:
            return f".{name}"
    for name in ("__traceback__", "__context__", "__cause__", "tb_frame", "tb_next", "__dict__",
                 "__self__", "__func__", "gi_frame", "cr_frame", "f_back"):  # fmt: skip
        try:
            if getattr(src, name) is dst:
                return f".{name}"
        except Exception:
            pass
    d = getattr(src, "__dict__", None)
    if isinstance(d, dict):
        for k, v in d.items():
            if v is dst:
                return f".{k}"
    return "?"


def cycle_path(start: Any, pool: list[Any]) -> list[str]:
    """Shortest reference path start -> ... -> start inside `pool` (the garbage), labelled."""
    ids = {id(o) for o in pool}
    prev: dict[int, tuple[int, Any]] = {}
    objs = {id(start): start}
    queue = collections.deque([start])
    while queue:
        o = queue.popleft()
        for r in gc.get_referents(o):
            if r is start:
                path = [start]
                cur = o
                while cur is not start:
                    path.append(cur)
                    cur = prev[id(cur)][1]
                path.append(start)
                path.reverse()  # start ... o start
                out = []
                for a, b in itertools.pairwise(path):
                    out.append(f"{typename(a)} --{edge(a, b)}-->")
                out.append(typename(start))
                return out
            if id(r) in ids and id(r) not in objs:
                objs[id(r)] = r
                prev[id(r)] = (id(o), o)
                queue.append(r)
    return ["no cycle back to start (only reachable from one)"]


class Probe:
    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.census_prev: collections.Counter[str] | None = None
        self.census_base: collections.Counter[str] | None = None
        self.trace_base: tracemalloc.Snapshot | None = None
        self.trace_prev: tracemalloc.Snapshot | None = None

    def basic(self) -> dict[str, Any]:
        return {
            "rss_kb": rss_kb(),
            "gc_count": gc.get_count(),
            "gc_objects": len(gc.get_objects()),
            "gc_frozen": gc.get_freeze_count(),
            "blocks": sys.getallocatedblocks(),
            "malloc": mallinfo(),
            "gc_stats": [s["collections"] for s in gc.get_stats()],
            "garbage": len(gc.garbage),
        }

    def census(self) -> dict[str, Any]:
        c = collections.Counter(typename(o) for o in gc.get_objects())
        out: dict[str, Any] = {"top": c.most_common(25)}
        if self.census_prev is not None:
            d = c.copy()
            d.subtract(self.census_prev)
            out["delta_prev"] = [(k, v) for k, v in d.most_common() if v][:25]
            out["delta_prev_neg"] = [(k, v) for k, v in sorted(d.items(), key=lambda kv: kv[1]) if v < 0][:10]
        if self.census_base is None:
            self.census_base = c
        else:
            d = c.copy()
            d.subtract(self.census_base)
            out["delta_base"] = [(k, v) for k, v in d.most_common() if v][:25]
        self.census_prev = c
        return out

    @staticmethod
    def _stats(new: tracemalloc.Snapshot, old: tracemalloc.Snapshot, key: str, n: int) -> list[Any]:
        rows = []
        for s in new.compare_to(old, key)[:n]:
            frames = [f"{f.filename.split('site-packages/')[-1].split('/src/')[-1]}:{f.lineno}"
                      for f in s.traceback]  # fmt: skip
            rows.append({"size_diff": s.size_diff, "count_diff": s.count_diff, "size": s.size,
                         "count": s.count, "frames": frames})  # fmt: skip
        return rows

    def trace(self, action: str) -> dict[str, Any]:
        if action == "start":
            tracemalloc.start(int(os.environ.get("MEMPROBE_FRAMES", "12")))
            self.trace_base = self.trace_prev = self._snap()
            return {"started": True}
        snap = self._snap()
        assert self.trace_base is not None and self.trace_prev is not None
        out = {
            "traced": tracemalloc.get_traced_memory(),
            "overhead": tracemalloc.get_tracemalloc_memory(),
            "by_line_base": self._stats(snap, self.trace_base, "lineno", 15),
            "by_tb_base": self._stats(snap, self.trace_base, "traceback", 10),
            "by_tb_prev": self._stats(snap, self.trace_prev, "traceback", 8),
        }
        self.trace_prev = snap
        return out

    @staticmethod
    def _snap() -> tracemalloc.Snapshot:
        me = os.path.abspath(__file__)
        return tracemalloc.take_snapshot().filter_traces((
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, me),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        ))  # fmt: skip

    def internals(self) -> dict[str, Any]:
        g = self.gateway
        inf = g._inference
        stage = next(s for s in inf._pipeline._stages if type(s).__name__ == "CacheStage")
        router = inf._router
        transports = {id(d.provider._transport): d.provider._transport for d in router.deployments()}
        out: dict[str, Any] = {
            "tasks": len(asyncio.all_tasks()),
            "flights": len(stage._flights),
            "memcache": [len(stage._memory), stage._memory.bytes],
            "metric_children": len(inf._metrics._children),
        }
        for t in transports.values():
            if hasattr(t, "_idle"):
                out["native"] = {
                    "idle": {str(k): len(v) for k, v in t._idle.items()},
                    "targets": len(t._targets),
                    "per_host": len(t._per_host),
                    "sem_waiters": [len(s._waiters or ()) for s in t._per_host.values()],
                }
            elif getattr(t, "_session", None) is not None:
                conn = t._session.connector
                out["aiohttp"] = {"conns": sum(len(v) for v in conn._conns.values()),
                                  "acquired": len(conn._acquired)}  # fmt: skip
        return out

    @staticmethod
    def garbage() -> dict[str, Any]:
        """What a full collection would free, and where it came from (gc.DEBUG_SAVEALL)."""
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            found = list(gc.garbage)
            gc.garbage.clear()
        finally:
            gc.set_debug(0)

        def where(f: Any) -> str:
            c = f.f_code
            return f"{c.co_filename.split('site-packages/')[-1].split('/src/')[-1]}:{f.f_lineno} {c.co_name}"

        types = collections.Counter(typename(o) for o in found)
        excs: collections.Counter[str] = collections.Counter()
        frames: collections.Counter[str] = collections.Counter()
        tasks: collections.Counter[str] = collections.Counter()
        misc: collections.Counter[str] = collections.Counter()
        for o in found:
            if isinstance(o, BaseException):
                tb = o.__traceback__
                last = None
                while tb is not None:
                    last = tb
                    tb = tb.tb_next
                excs[f"{typename(o)} raised at {where(last.tb_frame) if last else '?'}"] += 1
            elif isinstance(o, type(sys._getframe())):
                frames[where(o)] += 1
            elif isinstance(o, asyncio.Task):
                tasks[f"{o.get_coro().__qualname__} cancelled={o.cancelled()}"] += 1
            elif typename(o) == "interlock.edge.exchange.Exchange":
                misc[f"Exchange client_gone={o.client_gone} done={o.done} started={o.started}"] += 1
            elif typename(o) == "interlock.providers.pool._Connection":
                misc[f"_Connection closed={o.closed} complete={o.complete} error={o.error!r}"] += 1
            elif typename(o) == "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol":
                misc[f"HttpToolsProtocol transport_closing={o.transport.is_closing() if o.transport else None}"] += 1
        cycles = {}
        for wanted in (
            "asyncio.exceptions.CancelledError",
            "interlock.providers.pool._Connection",
            "interlock.edge.exchange.Exchange",
            "uvloop.loop.TCPTransport",
        ):
            start = next((o for o in found if typename(o) == wanted), None)
            if start is not None:
                cycles[wanted] = cycle_path(start, found)
        del found
        gc.collect()
        return {"count": sum(types.values()), "types": types.most_common(30),
                "exceptions": excs.most_common(15), "frames": frames.most_common(25),
                "tasks": tasks.most_common(10), "misc": misc.most_common(10), "cycles": cycles}  # fmt: skip

    def handle(self, qs: dict[str, list[str]]) -> dict[str, Any]:
        flag = lambda k: qs.get(k, [""])[0]  # noqa: E731
        out: dict[str, Any] = {"before": self.basic()}
        if flag("garbage"):
            out["garbage"] = self.garbage()
            out["after_garbage"] = self.basic()
        if flag("collect"):
            out["collected"] = [gc.collect(0), gc.collect(1), gc.collect(2)]
            out["after_collect"] = self.basic()
        if flag("census"):
            out["census"] = self.census()
        if flag("internals"):
            out["internals"] = self.internals()
        if flag("trace"):
            out["trace"] = self.trace(flag("trace"))
        if flag("trim"):
            libc.malloc_trim(0)
            out["after_trim"] = self.basic()
        return out


def wrap(gateway: Any) -> Any:
    probe = Probe(gateway)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/__mem":
            result = probe.handle(parse_qs(scope.get("query_string", b"").decode()))
            body = orjson.dumps(result)
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await gateway(scope, receive, send)

    return app


if __name__ == "__main__":
    config, port = sys.argv[1], int(sys.argv[2])
    gateway = build(load_settings(config))
    uvicorn.run(wrap(gateway), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                lifespan="on", access_log=False, log_level="warning")  # fmt: skip
