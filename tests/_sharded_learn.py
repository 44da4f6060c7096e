"""Run in a subprocess with 8 host devices (see test_sharding_learn.py): the
kernel-learning experiment on several meshes, through its command line
(`runner.main`), each into its own workdir under argv[1]. Prints one JSON
line: per run, its mesh as given, the summary's mesh/devices/steps/kernel,
the metrics rows, or the error it exited with."""

import contextlib
import io
import json
import os
import pathlib
import sys

import jax

from experiments import kernel_learning, runner

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "learn_document_kernel.py"
# 30 plain-SGD steps from zeros: far from converged (kernel error ~1e-2), so
# runs must agree step by step, not only at the common fixed point.
COMMON = ["--config.train.kernel_rtol=0", "--config.train.max_steps=30", "--quiet"]
RUNS = {
    "lax_1": ["--config.mesh.data=1", "--config.mesh.height=1"],
    "lax_8": ["--config.mesh.data=-1", "--config.mesh.height=1"],
    "lax_4x2": ["--config.mesh.data=4", "--config.mesh.height=2"],
    "einsum_same_1": [
        "--config.model.impl=einsum",
        "--config.model.padding=same",
    ],
    "einsum_same_2x4": [
        "--config.model.impl=einsum",
        "--config.model.padding=same",
        "--config.mesh.data=2",
        "--config.mesh.height=4",
    ],
    # Refused before anything runs, naming the field:
    "data_16": ["--config.mesh.data=16", "--config.data.num_pairs=32"],
    "height_rest": ["--config.mesh.data=2", "--config.mesh.height=-1"],
}


def main(out: pathlib.Path):
    assert "device_count=8" in os.environ.get("XLA_FLAGS", ""), os.environ
    assert jax.device_count() == 8, jax.devices()
    results = {}
    for name, overrides in RUNS.items():
        workdir = out / name
        argv = [f"--config={CONFIG}", f"--workdir={workdir}", *COMMON, *overrides]
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                runner.main(kernel_learning.run, argv)
                code = 0
            except SystemExit as e:
                code = e.code
        if code:
            results[name] = {"exit": code, "error": err.getvalue()}
            results[name]["workdir_exists"] = workdir.exists()
            continue
        summary = json.loads((workdir / "summary.json").read_text())
        results[name] = {
            "exit": 0,
            "mesh": summary["mesh"],
            "devices": summary["devices"],
            "steps": summary["steps"],
            "learned_kernel": summary["learned_kernel"],
            "rows": runner.read_jsonl(workdir / "metrics.jsonl"),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
