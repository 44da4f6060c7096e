"""Kernel learning on 8 (simulated) devices equals one device, on one mesh
axis or two, in one process or in two processes joined by jax.distributed.

The device count is fixed when JAX starts, so every run is a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=N on the CPU."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import _sharded_learn
import numpy as np
import pytest
from _devices import cpu_env, run_script

ROOT = Path(__file__).resolve().parents[1]
# Float32 tolerance on the kernel (largest entry 10): 8 epsilons of it.
KERNEL_ATOL = 8 * float(np.finfo(np.float32).eps) * 10
# The logged loss is a mean of squared residuals summed in another order on
# each mesh: a few float32 roundings of it, relatively.
LOSS_RTOL = 1e-4


def _env(devices: int) -> dict:
    env = cpu_env(devices)
    env.pop(_sharded_learn.runner.DISTRIBUTED_ENV, None)
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded_learn")
    script = Path(__file__).with_name("_sharded_learn.py")
    return run_script(script, out, cwd=ROOT, env=_env(8))


def _assert_same_learning(run, reference):
    assert run["exit"] == reference["exit"] == 0
    assert run["steps"] == reference["steps"] == 30
    np.testing.assert_allclose(
        run["learned_kernel"], reference["learned_kernel"], rtol=0, atol=KERNEL_ATOL
    )
    rows, ref_rows = run["rows"], reference["rows"]
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    for key in ("loss", "kernel_max_abs_error", "grad_norm"):
        np.testing.assert_allclose(
            [r[key] for r in rows], [r[key] for r in ref_rows], rtol=LOSS_RTOL
        )
    # Not converged: the runs agree step by step, not only at the answer.
    assert rows[-1]["kernel_max_abs_error"] > 1e-3


@pytest.mark.parametrize(
    "name, reference, mesh",
    [
        ("lax_8", "lax_1", {"data": 8, "height": 1}),  # data=-1: all 8
        ("lax_4x2", "lax_1", {"data": 4, "height": 2}),
        ("einsum_same_2x4", "einsum_same_1", {"data": 2, "height": 4}),
    ],
)
def test_eight_devices_learn_what_one_device_learns(runs, name, reference, mesh):
    assert runs[reference]["devices"] == 1
    assert runs[name]["mesh"] == mesh and runs[name]["devices"] == 8
    _assert_same_learning(runs[name], runs[reference])


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "data_16",
            r"error: `config.mesh` (={'data': 16, 'height': 1}) must use at most "
            r"the devices JAX sees (8; the product of its sizes is 16)",
        ),
        (
            "height_rest",
            r"error: `config.mesh.height` (=-1) must divide the image height "
            r"(4 devices): the input's, data.image_size (=16), and the output's "
            r"(=14, 'valid' padding, stride 1)",
        ),
    ],
)
def test_mesh_refused_by_name_before_anything(runs, name, message):
    run = runs[name]
    assert run["exit"] == 2
    assert run["error"].strip() == message
    assert not run["workdir_exists"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


# The launcher of each process: the experiment's module run as a script, as
# the README launches it, with Python's `sys.stdout` (everything the
# experiment prints) sent to the file named by the first argument. What the
# test reads is then jconv's own output alone: the CPU collectives library
# (gloo) logs its connections from C++ threads onto file descriptor 1, which
# this leaves alone (it goes to a pipe nobody reads), so no line of another
# library's log is ever parsed, whole or split.
LAUNCH = """
import runpy, sys
sys.stdout = open(sys.argv.pop(1), "w", buffering=1)
runpy.run_module("experiments.learn_kernel", run_name="__main__", alter_sys=True)
"""


def test_two_processes_learn_what_one_device_learns(runs, tmp_path):
    # Two processes of 4 devices each, joined by jax.distributed.initialize
    # (asked for by the environment variable).
    workdir = tmp_path / "two_processes"
    env = {**_env(4), _sharded_learn.runner.DISTRIBUTED_ENV: "1"}
    port = _free_port()
    args = [
        f"--config={_sharded_learn.CONFIG}", f"--workdir={workdir}",
        *_sharded_learn.COMMON, "--config.mesh.data=-1",
        f"--config.distributed.coordinator_address=localhost:{port}",
        "--config.distributed.num_processes=2",
    ]  # fmt: skip
    printed = [tmp_path / f"stdout_{i}.txt" for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                LAUNCH,
                str(printed[i]),
                *args,
                f"--config.distributed.process_id={i}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        errs = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, err in zip(procs, errs):
        assert p.returncode == 0, err[-4000:]
    out0, out1 = (path.read_text() for path in printed)
    assert "on 8 devices (mesh data=8, height=1)" in out0
    # Only process 0 prints (and writes).
    assert out1 == ""
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["mesh"] == {"data": 8, "height": 1} and summary["devices"] == 8
    run = {
        "exit": 0,
        "steps": summary["steps"],
        "learned_kernel": summary["learned_kernel"],
        "rows": _sharded_learn.runner.read_jsonl(workdir / "metrics.jsonl"),
    }
    _assert_same_learning(run, runs["lax_1"])
    # The checkpoint both processes saved through orbax, and the config of
    # process 0 (the one that wrote it).
    assert [p.name for p in (workdir / "checkpoints").iterdir()] == ["30"]
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["distributed"]["process_id"] == 0
