"""Run an entry point in its own process, as a test does for code that keeps process-wide state.

DeepSpeed (accelerator, process group) and ``torch.distributed`` launches cannot be undone inside
the pytest process: a test runs the script in a child with a single-threaded, op-build-free
environment and asserts that it succeeded, showing the end of its output when it did not.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

# One thread per process on the 2-core test machines; DeepSpeed must not try to compile its ops.
CLEAN_ENV = {"OMP_NUM_THREADS": "1", "DS_BUILD_OPS": "0"}


def run_script(
    cmd: Sequence[str], timeout: float = 600, env: Mapping[str, str] | None = None, tail: int = 3000
) -> str:
    """Run ``cmd``; return its stdout, or fail with the last ``tail`` characters of stdout and stderr.

    The child gets ``os.environ`` plus :data:`CLEAN_ENV` plus ``env``.
    """
    done = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        env={**os.environ, **CLEAN_ENV, **(env or {})},
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited with {done.returncode}\n"
            f"--- stdout (end) ---\n{done.stdout[-tail:]}\n--- stderr (end) ---\n{done.stderr[-tail:]}"
        )
    return done.stdout
