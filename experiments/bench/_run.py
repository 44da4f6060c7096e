"""The benchmark's orchestration: config check, inputs, workers, results.

The process that runs this loads no framework's compute: it writes the inputs,
starts one worker process per framework (`_worker.py`) in turn, each running
its implementations' jobs and then its side of the kernel-learning race,
gathers their JSON lines, and writes `results.json`, `results.md` and the
plots.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np

from configs import benchmark as benchmark_config  # the schema
from experiments import runner
from experiments.bench import _cases, _machine, _race_data, _report, _worker

REFERENCE_IMPL = "jconv_lax"
JAX_IMPLS = (
    "jconv_auto", "jconv_lax", "jconv_einsum", "jconv_onednn", "jconv_fft",
    "jconv_winograd", "lax_raw",
)  # fmt: skip
PEER_IMPLS = ("torch", "keras_tf")
# The worker group each side of the kernel-learning race runs in.
RACE_SIDES = {"jax": "jax", "keras_tf": "keras"}
IMPLS = JAX_IMPLS + PEER_IMPLS
RACE_OPTIMIZERS = ("sgd", "momentum", "adam")
FAST_OPTIMIZERS = ("sgd", "momentum", "adam", "lbfgs")
_REPO = pathlib.Path(__file__).resolve().parents[2]


def _subset(config, field: str, known) -> None:
    value = tuple(config[field])
    distinct = len(set(value)) == len(value)
    runner.require(
        len(value) > 0 and all(v in known for v in value) and distinct,
        field, value, f"be a non-empty tuple of distinct names from {tuple(known)}",
    )  # fmt: skip


def check_config(config) -> None:
    """Refuses a bad benchmark config, naming the field, before any work."""
    runner.check_fields(config, benchmark_config.get_config(), complete=True)
    _subset(config, "shapes", _cases.SHAPES)
    _subset(config, "impls", IMPLS)
    runner.require(
        REFERENCE_IMPL in config.impls, "impls", tuple(config.impls),
        f"include {REFERENCE_IMPL!r}: every other implementation is checked against it",
    )  # fmt: skip
    _subset(config, "modes", _cases.MODES)
    for mode in config.modes:
        needed = _cases.REFERENCE_MODE[mode]
        runner.require(
            needed in config.modes, "modes", tuple(config.modes),
            f"include {needed!r} with {mode!r}: its answers are checked against "
            f"{needed}'s and its times reported beside them",
        )  # fmt: skip
    _subset(config, "dtypes", _cases.DTYPES)
    for table in ("batch", "gpu_batch", "inner_iters", "gpu_inner_iters"):
        for name in config.shapes:
            value = config[table].get(name)
            runner.require(
                isinstance(value, int) and value >= 1,
                f"{table}.{name}", value, "be a positive int",
            )  # fmt: skip
    runner.require(config.warmup >= 0, "warmup", config.warmup, "be >= 0")
    runner.require(config.repeats >= 1, "repeats", config.repeats, "be >= 1")
    runner.require(
        config.scan_repeats >= 1, "scan_repeats", config.scan_repeats, "be >= 1"
    )
    unknown = set(config.in_scan_impls) - set(JAX_IMPLS)
    runner.require(
        not unknown and len(set(config.in_scan_impls)) == len(config.in_scan_impls),
        "in_scan_impls", tuple(config.in_scan_impls),
        f"be a tuple of distinct names from {JAX_IMPLS} (only JAX has a scan)",
    )  # fmt: skip
    for name, tol in config.tolerance.items():
        runner.require(0 < tol < 1, f"tolerance.{name}", tol, "be in (0, 1)")
    race = config.race
    if not race.enabled:
        return
    runner.require(race.n_images >= 1, "race.n_images", race.n_images, "be >= 1")
    runner.require(
        race.image_size >= 3, "race.image_size", race.image_size,
        "be >= 3 (the document's kernel is 3x3)",
    )  # fmt: skip
    runner.require(
        race.optimizer in RACE_OPTIMIZERS, "race.optimizer", race.optimizer,
        f"be one of {RACE_OPTIMIZERS} (each has the same update in optax and Keras)",
    )  # fmt: skip
    runner.require(
        race.learning_rate > 0, "race.learning_rate", race.learning_rate,
        "be positive",
    )  # fmt: skip
    for field in ("steps", "repeats", "keras_repeats", "max_steps"):
        runner.require(race[field] >= 1, f"race.{field}", race[field], "be >= 1")
    runner.require(
        race.target_error > 0, "race.target_error", race.target_error, "be positive"
    )
    for field in ("impls",):
        value = tuple(race[field])
        runner.require(
            len(value) > 0 and set(value) <= {"lax", "einsum"}, f"race.{field}",
            value, "be a non-empty tuple of 'lax' and/or 'einsum'",
        )  # fmt: skip
    runner.require(
        race.fast_impl in ("lax", "einsum"), "race.fast_impl", race.fast_impl,
        "be 'lax' or 'einsum'",
    )  # fmt: skip
    for cand in race.fast_candidates:
        name, _, lr = cand.partition(":")
        ok = name in FAST_OPTIMIZERS and (name == "lbfgs" or _positive_float(lr))
        runner.require(
            ok, "race.fast_candidates", tuple(race.fast_candidates),
            f"hold 'name:learning_rate' entries with name in {FAST_OPTIMIZERS} "
            "(L-BFGS may omit the rate: its line search picks the step)",
        )  # fmt: skip


def _positive_float(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def _worker_lines(spec: dict, scratch: pathlib.Path, log_path: pathlib.Path):
    """Runs one worker on `spec`, yielding its JSON lines, then its exit code
    and wall time."""
    spec_path = scratch / f"spec_{log_path.stem}.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "experiments.bench._worker", str(spec_path)],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=_REPO, env=env,
        )  # fmt: skip
        for line in proc.stdout:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                log.write(line)  # a framework printing on stdout
                continue
            if isinstance(row, dict) and "kind" in row:
                yield row
        returncode = proc.wait()
    yield {
        "kind": "exit",
        "returncode": returncode,
        "seconds": time.perf_counter() - start,
    }


def _cases_for(config, platform: str) -> list[_cases.ConvCase]:
    gpu = platform == "gpu"
    batch = config.gpu_batch if gpu else config.batch
    iters = config.gpu_inner_iters if gpu else config.inner_iters
    return [_cases.make_case(name, batch[name], iters[name]) for name in config.shapes]


def _write_inputs(case, seed: int, path: pathlib.Path) -> None:
    if case.shape == "doc4x4":
        from jconv import document  # the worked example's image and kernel

        image = np.asarray(document.IMAGE, np.float32)[..., None]
        arrays = _cases.make_inputs(case, seed, image=image, kernel=document.KERNEL)
    else:
        arrays = _cases.make_inputs(case, seed)
    np.savez(path, **arrays)


def _enrich(record: dict, case, gpu_kind: str) -> dict:
    """Adds the case, FLOPs, throughput and (for peers) the memory method."""
    # Where the worker ran it (PyTorch on CUDA where its build has it); a row
    # not run, or run by a CPU-only framework, is the host's.
    record.setdefault("device", "cpu")
    on_gpu = record["device"] == "gpu"
    record.update(case.describe())
    record["flops"] = case.flops(record["mode"])
    seconds = record.get("median_seconds")
    record["gflops"] = record["flops"] / seconds / 1e9 if seconds else None
    if on_gpu and seconds:
        record["tflops"] = record["flops"] / seconds / 1e12
        peak = _machine.gpu_peak_tflops(gpu_kind, record["dtype"])
        record["peak_tflops"] = peak
        record["percent_of_peak"] = 100 * record["tflops"] / peak if peak else None
    return record


def _worker_groups(impls, race: bool) -> list[tuple[str, list[str], str | None]]:
    """`(group, its implementations, its race side or None)`: one worker per
    framework. The JAX implementations share one, so their repeats interleave
    and they are timed side by side; each side of the kernel-learning race
    runs in its framework's worker, after the jobs (a worker of its own when
    the config times no implementation of that framework)."""
    groups = [("jax", [i for i in impls if i in JAX_IMPLS])]
    groups += [(i, [i]) for i in impls if i in PEER_IMPLS]
    if race and "keras_tf" not in impls:
        groups.append(("keras_tf", []))
    return [
        (name, members, RACE_SIDES.get(name) if race else None)
        for name, members in groups
        if members or (race and name in RACE_SIDES)
    ]


def _skip(jobs, records, bar, reason: str) -> None:
    """Records `jobs` as left out for `reason`, known before any runs (the
    config, or the machine: no GPU peers, no oneDNN): not run, and not a
    failure, even for a jconv row (`by_config`)."""
    for job in jobs:
        key = _cases.RowKey.of(job)
        records[key] = dict(
            key._asdict(), status="skipped", reason=reason, by_config=True
        )
        bar.update(1)


def _job(case, impl: str, mode: str, dtype: str, inputs, scratch) -> dict:
    """One worker job. The reference implementation writes the arrays of the
    modes that are their own reference; every other job reads its mode's."""
    ref_mode = _cases.REFERENCE_MODE[mode]
    return {
        **_cases.RowKey(case.shape, impl, mode, dtype)._asdict(),
        "batch": case.batch,
        "inner_iters": case.inner_iters,
        "inputs": str(inputs),
        "reference": str(scratch / f"ref_{case.shape}_{dtype}_{ref_mode}.npz"),
        "write_reference": impl == REFERENCE_IMPL and mode == ref_mode,
    }


def _run_workers(config, impls, cases, probe, scratch, logs, metrics, bar):
    """Runs every worker: the implementations' jobs, then the race's side.
    `probe`: the JAX probe's `meta` (the platform, whether oneDNN runs).

    Returns the records by row key, each worker's `meta` by group and the
    race's two sides (`sides`, empty without a race)."""
    platform = probe["platform"]
    onednn = probe.get("jconv_onednn") or {"available": False, "reason": "unknown"}
    records, metas, sides = {}, {}, {}
    paths = {}
    for case in cases:
        paths[case.shape] = scratch / f"inputs_{case.shape}.npz"
        _write_inputs(case, config.seed, paths[case.shape])
    race = _race_spec(config, scratch) if config.race.enabled else None
    # A mode checked against another's reference runs after it.
    modes = [m for m in _cases.MODES if m in config.modes]
    for group, members, side in _worker_groups(impls, race is not None):
        # The reference implementation's jobs come first: they write the
        # arrays every other job is checked against.
        jobs = [
            _job(case, impl, mode, dtype, paths[case.shape], scratch)
            for impl in members
            for case in cases
            for dtype in config.dtypes
            for mode in modes
        ]
        if group in PEER_IMPLS:
            _skip(
                [j for j in jobs if j["mode"] in _cases.JAX_ONLY_MODES], records, bar,
                "JAX only: in_scan times a jitted lax.scan, which PyTorch and "
                "Keras have no counterpart of",
            )  # fmt: skip
        else:
            _skip(
                [
                    j for j in jobs
                    if j["mode"] in _cases.JAX_ONLY_MODES
                    and j["impl"] not in config.in_scan_impls
                ],
                records, bar, "not in config.in_scan_impls",
            )  # fmt: skip
        _skip(
            [
                j for j in jobs
                if j["impl"] == "jconv_winograd"
                and not _cases.winograd_applies(_cases.SHAPES[j["shape"]])
                and _cases.RowKey.of(j) not in records
            ],
            records, bar, "Winograd F(m x m, 3 x 3): 2-D 3x3 kernels at stride 1 only",
        )  # fmt: skip
        if not onednn["available"]:
            # No extension, JCONV_ONEDNN=0, or JAX on a GPU: jconv says why.
            _skip(
                [
                    j for j in jobs
                    if j["impl"] == "jconv_onednn"
                    and _cases.RowKey.of(j) not in records
                ],
                records, bar, f"oneDNN unavailable: {onednn['reason']}",
            )  # fmt: skip
        ranks = onednn.get("ranks", [])
        _skip(
            [
                j for j in jobs
                if j["impl"] == "jconv_onednn"
                and _cases.SHAPES[j["shape"]].rank not in ranks
                and _cases.RowKey.of(j) not in records
            ],
            records, bar,
            "impl='onednn' runs "
            + " and ".join(f"{r}-D" for r in ranks)
            + " convolutions only (jconv._onednn.RANKS)",
        )  # fmt: skip
        jobs = [j for j in jobs if _cases.RowKey.of(j) not in records]
        if (
            group in PEER_IMPLS
            and platform == "gpu"
            and not config.peers_on_gpu_machine
        ):
            _skip(
                jobs, records, bar,
                "JAX runs on the GPU and peers run on a GPU machine only with "
                "config.peers_on_gpu_machine=True (then PyTorch uses CUDA if its "
                "build has it, Keras/TensorFlow the host CPU)",
            )  # fmt: skip
            jobs = []
        if not jobs and side is None:
            continue
        spec = {
            "kind": "jobs",
            "jobs": jobs,
            "backends": {impl: _worker.BACKENDS[impl] for impl in members},
            "warmup": config.warmup,
            "repeats": config.repeats,
            "scan_repeats": config.scan_repeats,
            "tolerance": config.tolerance.to_dict(),
            "measure_memory": config.measure_memory,
            "reference_impl": REFERENCE_IMPL,
            "reference_platform": platform,
            "race": None if side is None else race | {"side": side},
        }
        checked = set()
        for row in _worker_lines(spec, scratch, logs / f"{group}.log"):
            kind = row.pop("kind")
            if kind == "meta":
                metas.setdefault(group, row)
            elif kind == "checked":
                checked.add(_cases.RowKey.of(row))
                bar.update(1)
            elif kind == "record":
                records[_cases.RowKey.of(row)] = row
                metrics.write(**row)
            elif kind == "memory":
                records[_cases.RowKey.of(row)].update(row)
            elif kind == "race":
                sides[side] = row
            elif kind == "exit":
                metas.setdefault(group, {})["worker_seconds"] = row["seconds"]
                if side is not None:
                    if row["returncode"] != 0:
                        sides[side] = {
                            "error": f"worker exited with code {row['returncode']}; "
                            f"see logs/{group}.log"
                        }
                    bar.update(1)
                if row["returncode"] == 0:
                    continue
                for job in jobs:
                    key = _cases.RowKey.of(job)
                    if key not in records:
                        records[key] = dict(
                            key._asdict(),
                            status="failed",
                            reason=f"worker exited with code {row['returncode']}; "
                            f"see logs/{group}.log",
                        )
                        if key not in checked:
                            bar.update(1)
    return records, metas, sides


def _finish_memory(record: dict, measure_memory: bool) -> None:
    if record.get("status") != "ok":
        return
    if not measure_memory:
        record.setdefault("peak_memory_bytes", None)
        record["memory_method"] = "n/a: disabled (config.measure_memory=False)"
        return
    if record["impl"] in PEER_IMPLS:
        # No allocator statistics for native CPU memory in either peer:
        # the resident-set measurement is the measurable one.
        record["peak_memory_bytes"] = record.get("rss_peak_bytes")
        record["memory_method"] = record.get("rss_method", "n/a")


def _race_spec(config, scratch) -> dict:
    """The race's settings for a worker, its data written into `scratch`."""
    from jconv import document

    race = config.race
    data = _race_data.make_race_data(
        document.KERNEL, race.n_images, (race.image_size, race.image_size), race.seed
    )
    data_path = scratch / "race_data.npz"
    np.savez(data_path, **data)
    return dict(race.to_dict(), data=str(data_path))


def _finish_race(config, sides, scratch, metrics) -> dict:
    """`kernel_race`: both sides summarised, and its metrics row."""
    with np.load(scratch / "race_data.npz") as d:
        data = {k: d[k] for k in d.files}
    result = _report.summarise_race(sides, config.race.to_dict(), data)
    metrics.write(
        kind="kernel_race", **{k: v for k, v in result.items() if k != "jconv"}
    )
    return result


def run_benchmark(config, workdir, *, overwrite: bool = False, quiet: bool = False):
    """Runs the benchmark `config` into `workdir` (see configs/benchmark.py).

    Returns:
      The `results.json` object: `machine`, `records`, `kernel_race`.
    """
    check_config(config)
    wd = runner.prepare_workdir(workdir, config, overwrite=overwrite)
    scratch = wd.path / "_scratch"
    logs = wd.path / "logs"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    scratch.mkdir()
    logs.mkdir()
    machine = {"host": _machine.describe_host()}

    probe = {}
    for row in _worker_lines({"kind": "probe"}, scratch, logs / "probe.log"):
        if row.pop("kind") == "meta":
            probe = row
    if not probe:
        raise RuntimeError(f"JAX could not start; see {logs / 'probe.log'}")
    platform = probe["platform"]
    machine["jax_device"] = {k: probe[k] for k in ("platform", "device_kind")}
    # Whether impl="onednn" runs here (its rows are skipped with the reason
    # where it does not).
    machine["jconv_onednn"] = probe.get("jconv_onednn")
    cases = _cases_for(config, platform)
    impls = [REFERENCE_IMPL] + [i for i in config.impls if i != REFERENCE_IMPL]
    n_jobs = len(cases) * len(config.modes) * len(config.dtypes) * len(impls)
    total = n_jobs + (2 if config.race.enabled else 0)
    with (
        wd.metrics() as metrics,
        runner.progress(total, quiet=quiet, desc="benchmark") as bar,
    ):
        records, metas, sides = _run_workers(
            config, impls, cases, probe, scratch, logs, metrics, bar
        )
        race = (
            _finish_race(config, sides, scratch, metrics)
            if config.race.enabled
            else None
        )
    by_shape = {c.shape: c for c in cases}
    modes = [m for m in _cases.MODES if m in config.modes]
    ordered = []
    for case in cases:
        for dtype in config.dtypes:
            for mode in modes:
                for impl in impls:
                    rec = records.get(_cases.RowKey(case.shape, impl, mode, dtype))
                    if rec is None:
                        continue
                    rec = _enrich(rec, by_shape[case.shape], probe["device_kind"])
                    _finish_memory(rec, config.measure_memory)
                    ordered.append(rec)
    # Read inside the TensorFlow worker (None where keras_tf did not run).
    machine["tensorflow_onednn"] = metas.get("keras_tf", {}).pop(
        "tensorflow_onednn", None
    )
    machine["frameworks"] = metas
    machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    results = {"machine": machine, "records": ordered, "kernel_race": race}
    (wd.path / "results.json").write_text(
        json.dumps(runner.to_jsonable(results), indent=1) + "\n"
    )
    (wd.path / "results.md").write_text(_report.markdown(results))
    outputs = ["results.json", "results.md"]
    # `make bench-gpu` installs nothing, and a GPU image may lack matplotlib:
    # the tables are the results, the plots are skipped.
    if importlib.util.find_spec("matplotlib") is not None:
        outputs.append(_report.plot_times(results, wd.path / "times.png").name)
        if race is not None:
            outputs.append(_report.plot_race(race, wd.path / "race.png").name)
    if not config.keep_scratch:
        shutil.rmtree(scratch)
    wd.write_summary(_report.summary(results, outputs))
    return results
