"""Scripts run in a subprocess on simulated CPU devices.

JAX fixes its device count when it starts, so a test that needs N devices runs
a script in a fresh process with XLA_FLAGS set; the script prints its results
as one JSON line, its last."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def cpu_env(devices: int) -> dict:
    """This process's environment, with JAX on `devices` simulated CPU devices
    (other XLA flags kept: a suite run with `--xla_cpu_max_isa=AVX2` runs its
    subprocesses so too)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def run_script(script, *args, env, cwd=None):
    """The last stdout line of `python script *args`, parsed as JSON; the run
    must exit 0 (its stderr's tail is the failure message)."""
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
