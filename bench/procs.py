"""Processes for the Python benchmarks (`bench/drift`, `bench/rollout`): a free port, a subprocess
with its output in a log file, waiting until one answers HTTP, a redis-server of their own, and
an aiohttp app of theirs on a free port.
Those scripts put `bench/` on their path to import this."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]  # the repository: processes run from there


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A subprocess with its output in a log file, stopped by SIGINT (then SIGKILL) on `stop`."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


async def wait_http(session: aiohttp.ClientSession, url: str, proc: Process, timeout: float = 90.0) -> None:
    """Until `url` answers below 500; fails at once, with its log, if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(
                f"{proc.log_path.name}: exited with {proc.proc.returncode}:\n{proc.log_path.read_text()}"
            )
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                if resp.status < 500:
                    return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def start_redis(work: Path) -> tuple[Process, str]:
    """A redis-server on a free port that keeps nothing on disk: (process, URL)."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed: install it or pass --redis-url")
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = Process(args, work / "redis.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    proc.stop()
    raise TimeoutError("redis-server did not start")


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """An aiohttp app on a free loopback port: (the runner, to `cleanup()` at the end; the port)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # port 0: ask the OS
