from __future__ import annotations

import os
import subprocess
import sys

import interlock


def test_public_api() -> None:
    assert set(interlock.__all__) == {
        "ConfigError", "InterlockError", "Settings", "build", "create_app", "default_settings",
        "load_settings", "parse_settings",
    }  # fmt: skip


def test_one_blas_thread_unless_asked() -> None:
    """Importing the package (as `interlock serve` and `python -m interlock` do, before any of
    their own code runs) sets one OpenBLAS thread before numpy loads: no idle BLAS worker thread
    is left to spin after an embedding. A value set beforehand wins."""
    script = (
        "import os, sys, interlock, numpy\n"
        "threads = len(os.listdir('/proc/self/task')) if sys.platform == 'linux' else 1\n"
        "print(os.environ['OPENBLAS_NUM_THREADS'], threads)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "2"
