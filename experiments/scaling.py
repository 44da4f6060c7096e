"""Throughput of the kernel-learning step on 1, 2, 4, 8 devices.

    python -m experiments.scaling --config=configs/scaling.py --workdir=runs/scaling

`measure_scaling` times `jconv.learn.make_train_chunk` (the step every
kernel-learning experiment runs) with the pairs split over a `"data"` mesh
axis of 1, 2, 4, ... devices, each device count in its own subprocess: JAX
fixes its device count when it starts, so on a CPU the devices are simulated
with `XLA_FLAGS=--xla_force_host_platform_device_count=N` (`platform="cpu"`).
With `platform="native"` every subprocess sees the machine's own devices
(GPUs, TPU cores) and uses the first N. `measure_throughput` is the timing
itself, in the current process.

The workdir receives `config.json`, `metrics.jsonl` (one row per device
count), `summary.json` (the rows and the machine), `scaling.md` (the table)
and `scaling.png` (images/s against devices, next to linear scaling).
"""

from __future__ import annotations

import json
import os
import pathlib
import platform as platform_module
import subprocess
import sys
import time

import numpy as np

from experiments import plots, runner

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODES = ("weak", "strong")
PLATFORMS = ("cpu", "native")
IMPLS = ("lax", "einsum")
_DEVICE_FLAG = "--xla_force_host_platform_device_count"

# Every field of configs/scaling.py; the keyword arguments of measure_scaling.
DEFAULTS = dict(
    device_counts=(1, 2, 4, 8),
    mode="weak",
    batch=32,
    image_size=32,
    channels=4,
    channels_out=4,
    kernel_size=3,
    impl="lax",
    precision="highest",
    steps=10,
    warmup=1,
    repeats=5,
    seed=0,
    platform="cpu",
    timeout=600,
)
# The keywords of measure_throughput that measure_scaling passes through.
PROBLEM_KEYS = ("image_size", "channels", "channels_out", "kernel_size", "impl",
                "precision", "steps", "warmup", "repeats", "seed")  # fmt: skip


# --------------------------------------------------------------------- config


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def check_config(config) -> None:
    """Refuses unknown, missing or bad fields of a scaling config, by name."""
    runner.check_fields(config, DEFAULTS, complete=True)
    counts = tuple(config.device_counts)
    runner.require(
        counts
        and all(_is_int(n) and n >= 1 for n in counts)
        and list(counts) == sorted(set(counts)),
        "device_counts",
        counts,
        "be increasing ints >= 1, e.g. (1, 2, 4, 8)",
    )
    runner.require(config.mode in MODES, "mode", config.mode, f"be one of {MODES}")
    for name in ("batch", "image_size", "channels", "channels_out", "kernel_size",
                 "steps", "repeats", "timeout"):  # fmt: skip
        value = config[name]
        runner.require(_is_int(value) and value >= 1, name, value, "be an int >= 1")
    runner.require(
        _is_int(config.warmup) and config.warmup >= 0,
        "warmup",
        config.warmup,
        "be an int >= 0",
    )
    runner.require(
        _is_int(config.seed) and config.seed >= 0, "seed", config.seed, "be an int >= 0"
    )
    runner.require(config.impl in IMPLS, "impl", config.impl, f"be one of {IMPLS}")
    precisions = (None, "default", "high", "highest")
    runner.require(
        config.precision in precisions,
        "precision",
        config.precision,
        f"be one of {precisions}",
    )
    runner.require(
        config.platform in PLATFORMS,
        "platform",
        config.platform,
        f"be one of {PLATFORMS}",
    )
    runner.require(
        config.kernel_size <= config.image_size,
        "kernel_size",
        config.kernel_size,
        f"not exceed image_size (={config.image_size})",
    )
    if config.mode == "strong":
        bad = [n for n in counts if config.batch % n]
        runner.require(
            not bad,
            "batch",
            config.batch,
            f"be divisible by every device count in mode 'strong' (not by {bad}): "
            "the pairs are split evenly",
        )


# ---------------------------------------------------------------- measurement


def measure_throughput(
    devices: int,
    *,
    batch: int,
    image_size: int,
    channels: int,
    channels_out: int,
    kernel_size: int,
    impl: str = "lax",
    precision=None,
    steps: int = 10,
    warmup: int = 1,
    repeats: int = 5,
    seed: int = 0,
) -> dict:
    """Times the learning step on the first `devices` devices of this process.

    A random `Conv2D` layer (`kernel_size`, `channels` -> `channels_out`,
    "same" padding) is learned by SGD from `batch` random
    `image_size x image_size` pairs split over a mesh axis `"data"` of
    `devices` devices (`jconv.learn.problem_specs`). One timed call is one
    jitted `lax.scan` of `steps` full-batch steps (`make_train_chunk`),
    waited for; `warmup` untimed calls first (the first compiles).

    Returns:
      A dict: `devices`, `batch`, `repeats_seconds` (each call),
      `seconds_per_step` and `images_per_second` (from the median call),
      `compile_seconds` (the first call), `placed_on` (devices the pairs were
      spread over), `final_loss`.
    """
    import jax
    from jax.sharding import PartitionSpec

    from experiments import kernel_data
    from jconv import learn

    if devices > jax.device_count():
        raise ValueError(
            f"`devices` (={devices}) exceeds the {jax.device_count()} devices JAX sees"
        )
    if batch % devices:
        raise ValueError(f"`batch` (={batch}) must be divisible by `devices`")
    model = learn.ConvModel(
        kernel_shape=(kernel_size, kernel_size, channels, channels_out),
        padding="same",
        impl=impl,
        precision=precision,
    )
    x = kernel_data.input_images(
        "random", num_images=batch, image_size=image_size, channels=channels, seed=seed
    )
    true = {
        "kernel": kernel_data.true_kernel(
            "random",
            kernel_size=kernel_size,
            channels_in=channels,
            channels_out=channels_out,
            seed=seed,
        )
    }
    y = np.asarray(jax.jit(model.apply)(true, x))
    problem = learn.Problem(x, y, np.ones(batch, np.float32), true)
    stacked = jax.tree.map(lambda a: np.asarray(a)[None], problem)
    mesh = runner.make_mesh({learn.DATA_AXIS: devices})
    problems = runner.place(stacked, mesh, learn.problem_specs(mesh.axis_names))
    # Unit-variance images and outputs: the loss's curvature is about 2.
    optimizer = learn.make_optimizer("sgd", 0.1)
    state = runner.place(learn.init_state(model, optimizer, 1), mesh, PartitionSpec())
    chunk = learn.make_train_chunk(model, optimizer, steps)

    compile_seconds = None
    for _ in range(warmup):
        t0 = time.perf_counter()
        state, metrics, _ = jax.block_until_ready(chunk(state, problems))
        compile_seconds = compile_seconds or time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, metrics, _ = jax.block_until_ready(chunk(state, problems))
        times.append(time.perf_counter() - t0)
    median = float(np.median(times))
    return {
        "devices": devices,
        "batch": batch,
        "repeats_seconds": times,
        "seconds_per_step": median / steps,
        "images_per_second": batch * steps / median,
        "compile_seconds": compile_seconds,
        "placed_on": len(problems.x.sharding.device_set),
        "final_loss": float(runner.fetch(metrics.loss)[0]),
    }


def _worker_env(devices: int, platform: str) -> dict:
    env = dict(os.environ)
    if platform == "cpu":
        flags = [f for f in env.get("XLA_FLAGS", "").split() if _DEVICE_FLAG not in f]
        env["XLA_FLAGS"] = " ".join([*flags, f"{_DEVICE_FLAG}={devices}"])
        env["JAX_PLATFORMS"] = "cpu"
    return env


def measure_scaling(
    device_counts=DEFAULTS["device_counts"],
    *,
    mode: str = DEFAULTS["mode"],
    batch: int = DEFAULTS["batch"],
    platform: str = DEFAULTS["platform"],
    timeout: float = DEFAULTS["timeout"],
    on_row=None,
    **problem,
) -> list[dict]:
    """Learning-step throughput at each device count, one subprocess each.

    Args:
      device_counts: increasing device counts, e.g. `(1, 2, 4, 8)`.
      mode: `"weak"`: `batch` pairs per device (the global batch grows with
        the devices); `"strong"`: `batch` pairs in all, split over them.
      batch: pairs per device (weak) or in all (strong).
      platform: `"cpu"`: N simulated host devices (they share the machine's
        cores); `"native"`: the first N of the machine's own devices.
      timeout: seconds allowed to each subprocess.
      on_row: called with each row as soon as it is measured.
      **problem: the other keywords of `measure_throughput` (`image_size`,
        `channels`, `channels_out`, `kernel_size`, `impl`, `precision`,
        `steps`, `warmup`, `repeats`, `seed`); defaults as in `DEFAULTS`.

    Returns:
      One dict per device count: what `measure_throughput` returns, plus
      `speedup` (images/s over the first count's) and `efficiency` (speedup
      over the ratio of device counts; 1 is linear scaling).

    Raises:
      RuntimeError: a subprocess failed or timed out (its stderr's end).
    """
    kwargs = {k: DEFAULTS[k] for k in PROBLEM_KEYS}
    unknown = set(problem) - set(kwargs)
    if unknown:
        raise TypeError(f"measure_scaling got unknown keywords {sorted(unknown)}")
    kwargs.update(problem)
    if mode not in MODES:
        raise ValueError(f"`mode` (={mode!r}) must be one of {MODES}")
    if platform not in PLATFORMS:
        raise ValueError(f"`platform` (={platform!r}) must be one of {PLATFORMS}")
    rows = []
    for n in device_counts:
        job = {**kwargs, "devices": n, "batch": batch * n if mode == "weak" else batch}
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "experiments.scaling", "--worker",
                 json.dumps(job)],
                cwd=ROOT, env=_worker_env(n, platform), capture_output=True,
                text=True, timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"the {n}-device measurement took over {timeout} s"
            ) from None
        if proc.returncode != 0:
            raise RuntimeError(
                f"the {n}-device measurement failed (exit {proc.returncode}):\n"
                + proc.stderr[-3000:]
            )
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        first = rows[0] if rows else row
        row["speedup"] = row["images_per_second"] / first["images_per_second"]
        row["efficiency"] = row["speedup"] / (n / first["devices"])
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


# ----------------------------------------------------------------- experiment


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| devices | batch | ms / step (median) | images/s | speedup | efficiency |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['devices']} | {r['batch']} | {1e3 * r['seconds_per_step']:.2f} | "
            f"{r['images_per_second']:.0f} | {r['speedup']:.2f} | "
            f"{r['efficiency']:.2f} |"
        )
    return "\n".join(lines)


def machine() -> dict:
    """What the numbers depend on: cores, load, platform, JAX version."""
    import jax

    return {
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg())
        if hasattr(os, "getloadavg")
        else None,
        "processor": platform_module.processor() or platform_module.machine(),
        "python": platform_module.python_version(),
        "jax": jax.__version__,
    }


def run(
    config, workdir, *, overwrite=False, quiet=False, allow_optimizer_change=False
) -> dict:
    """`python -m experiments.scaling`: checks, measures, writes, prints.

    `allow_optimizer_change` is ignored: a scaling run has no optimizer
    settings to resume with.
    """
    del allow_optimizer_change
    check_config(config)
    wd = runner.prepare_workdir(workdir, config, overwrite=overwrite)
    keys = [k for k in DEFAULTS if k != "device_counts"]
    counts = tuple(config.device_counts)
    before = machine()
    with (
        wd.metrics() as log,
        runner.progress(len(counts), quiet=quiet, desc="device counts") as bar,
    ):
        rows = measure_scaling(
            counts,
            **{k: config[k] for k in keys},
            on_row=lambda row: (log.write(**row), bar.update(1)),
        )
    summary = {
        "mode": config.mode,
        "platform": config.platform,
        "rows": rows,
        "machine_before": before,
        "load_average_after": machine()["load_average_1_5_15"],
    }
    text = table(rows)
    if wd.writer:
        (wd.path / "scaling.md").write_text(text + "\n")
    devices = [r["devices"] for r in rows]
    ips = [r["images_per_second"] for r in rows]
    plots.plot_curves(
        wd.path / "scaling.png",
        devices,
        {
            "measured": ips,
            "linear scaling": [ips[0] * n / devices[0] for n in devices],
        },
        xlabel="devices",
        ylabel="images / s",
        logx=True,
        logy=True,
        title=f"learning-step throughput ({config.mode} scaling, {config.platform})",
        styles={"measured": "o-", "linear scaling": "k--"},
    )
    summary["plots"] = ["scaling.png"]
    wd.write_summary(summary)
    if wd.writer:
        print(text)
        print(f"summary: {wd.path / runner.SUMMARY_JSON}")
    return summary


def _worker(job_json: str) -> None:
    job = json.loads(job_json)
    print(json.dumps(measure_throughput(job.pop("devices"), **job)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(sys.argv[2])
    else:
        runner.main(run)
