"""One benchmark worker: a fresh process per framework.

    python -m experiments.bench._worker SPEC.json

Each framework (JAX, PyTorch, TensorFlow) runs in its own process so that
only its framework is loaded (no idle thread pool of another one competes for
the cores), and its resident memory is its own. The worker prints one JSON
object per line on stdout: `meta` first, `checked` per job once its answer is checked, a
`record` per job once all are timed, then a `memory` line per job (measured
after all timing, see `release_freed_memory`), then the `race` result of its
framework's side of the kernel-learning race, if the spec asks for it.
Framework logs go to stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import statistics
import sys
import traceback

import numpy as np

from experiments.bench import _cases, _memory, _timer

# The module that runs each implementation. The orchestrator sends the map in
# the spec, so a test can point an implementation at another one (`_wrong_impl`).
BACKENDS = {
    "jconv_auto": "experiments.bench._jax_impls",
    "jconv_lax": "experiments.bench._jax_impls",
    "jconv_einsum": "experiments.bench._jax_impls",
    "jconv_onednn": "experiments.bench._jax_impls",
    "jconv_fft": "experiments.bench._jax_impls",
    "jconv_winograd": "experiments.bench._jax_impls",
    "lax_raw": "experiments.bench._jax_impls",
    "torch": "experiments.bench._torch_impl",
    "keras_tf": "experiments.bench._keras_impl",
}
RACE_SIDES = {
    "jax": "experiments.bench._race_jax",
    "keras": "experiments.bench._race_keras",
}


def emit(kind: str, **fields) -> None:
    print(json.dumps({"kind": kind, **fields}), flush=True)


def _tolerance(spec: dict, dtype: str, ref_platform: str) -> float:
    if dtype == "float32" and ref_platform == "gpu":
        # JAX's default precision lets float32 convolutions use TF32 on GPUs.
        return spec["tolerance"]["float32_gpu"]
    return spec["tolerance"][dtype]


def _check(prepared, job: dict, spec: dict, impl: str) -> tuple[str, dict]:
    outputs = prepared.outputs()
    names = _cases.output_names(job["mode"])
    if job.get("write_reference"):
        np.savez(job["reference"], **{n: outputs[n] for n in names})
        return "ok", {"reference": True, "passed": True}
    with np.load(job["reference"]) as ref:
        reference = {n: ref[n] for n in names}
    tol = _tolerance(spec, job["dtype"], spec["reference_platform"])
    check = _cases.compare(outputs, reference, tol)
    ref_mode = _cases.REFERENCE_MODE[job["mode"]]
    check["against"] = spec["reference_impl"] + (
        f" {ref_mode}" if ref_mode != job["mode"] else ""
    )
    return ("ok" if check["passed"] else "mismatch"), check


def _prepare_and_check(backend, job: dict, spec: dict):
    """(record, case, prepared): the answer checked, nothing timed yet."""
    impl = job["impl"]
    case = _cases.make_case(job["shape"], job["batch"], job["inner_iters"])
    key = _cases.RowKey.of(job)._asdict()
    if not job.get("write_reference") and not os.path.exists(job["reference"]):
        why = f"no reference: {spec['reference_impl']} did not run this case"
        return dict(key, status="skipped", reason=why), case, None
    with np.load(job["inputs"]) as data:
        arrays = {n: data[n] for n in ("x", "kernel", "ct")}
    try:
        prepared = backend.prepare(impl, case, job["mode"], job["dtype"], arrays)
        status, check = _check(prepared, job, spec, impl)
    except Exception as e:
        # The framework refused the case (a dtype or an op it has no CPU
        # kernel for): recorded with its reason, never silently dropped.
        traceback.print_exc(file=sys.stderr)
        why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
        return dict(key, status="unsupported", reason=why), case, None
    record = dict(key, status=status, check=check, **prepared.info)
    if status != "ok":
        record["reason"] = "answer differs from the reference: not timed"
        return record, case, None
    return record, case, prepared


def _timed_items(record, case, prepared):
    """What is timed for one row, as `(record, name, fn, n)`: `fn(n)` does `n`
    convolutions, timed as one sample. The convolution itself
    (`steps_per_call` per call: `inner_iters`, or an in_scan row's whole
    scan); for small shapes also a single call, and for JAX an eager
    Python call of the public function, each sampled as a burst of up to 50
    back-to-back calls (rows timed in between leave the caches cold)."""
    burst = min(case.inner_iters, 50)
    items = [("main", prepared.run, case.steps_per_call(record["mode"]))]
    if case.inner_iters > 1 and record["mode"] != "in_scan":
        items.append(("single_call", _repeat(lambda: prepared.run(1)), burst))
    if prepared.eager is not None:
        items.append(("eager_call", _repeat(prepared.eager), burst))
    return [(record, name, fn, n) for name, fn, n in items]


def _repeat(call):
    def run(n):
        for _ in range(n):
            call()

    return run


def run_jobs(spec: dict) -> None:
    """Checks every job, warms it up, then times all of them round-robin.

    Each round times every row once, in a shuffled order, so a burst of load
    from other processes on a shared machine spreads over all rows instead of
    landing on one row's repeats; rows of one worker (the JAX
    implementations share one) are timed side by side. An in_scan row, whose
    call is a whole scan, is warmed up once and timed `scan_repeats` times,
    in rounds spread evenly over the others.
    """
    modules = {spec["backends"][job["impl"]] for job in spec["jobs"]}
    backends = {m: importlib.import_module(m) for m in sorted(modules)}
    meta = {}
    for module in backends.values():
        meta.update(module.meta())
    emit("meta", **meta)
    items, measured = [], []
    for job in spec["jobs"]:
        backend = backends[spec["backends"][job["impl"]]]
        record, case, prepared = _prepare_and_check(backend, job, spec)
        emit("checked", **_cases.RowKey.of(record)._asdict())
        if prepared is None:
            emit("record", **record)
            continue
        new = _timed_items(record, case, prepared)
        in_scan = job["mode"] == "in_scan"
        for _ in range(min(spec["warmup"], 1) if in_scan else spec["warmup"]):
            for _, _, fn, n in new:
                fn(n)
        items += new
        measured.append((record, case, prepared))
    times = {id(item): [] for item in items}
    rng = random.Random(0)
    repeats, scan_repeats = spec["repeats"], spec["scan_repeats"]
    rounds = max(repeats, scan_repeats)

    def timed_in(item, r: int) -> bool:
        count = scan_repeats if item[0]["mode"] == "in_scan" else repeats
        return (r + 1) * count // rounds > r * count // rounds

    for r in range(rounds):
        order = [item for item in items if timed_in(item, r)]
        rng.shuffle(order)
        for item in order:
            _, _, fn, n = item
            times[id(item)].append(_timer.stopwatch(fn, n)[0] / n)
    for item in items:
        record, name, _, n = item
        per_conv = times[id(item)]
        if name == "main":
            record.update(
                median_seconds=statistics.median(per_conv),
                min_seconds=min(per_conv),
                seconds=per_conv,
            )
        else:
            record[f"{name}_seconds"] = statistics.median(per_conv)
    for record, _, _ in measured:
        emit("record", **record)
    if spec["measure_memory"] and measured:
        _measure_memory(measured, on_host=meta.get("platform", "cpu") == "cpu")


def _measure_memory(measured, on_host: bool) -> None:
    released = _memory.release_freed_memory()
    for record, case, prepared in measured:
        key = _cases.RowKey.of(record)._asdict()
        if key["mode"] == "in_scan":
            # A whole scan more per row, for what memory_analysis already
            # gives (the rows are JAX's): not sampled.
            why = "not sampled for in_scan (see the memory analysis)"
        elif not on_host:
            why = "host RSS does not see accelerator memory"
        elif not released:
            why = "freed memory cannot be released (not glibc)"
        else:
            why = None
        if why is not None:
            emit("memory", **key, rss_peak_bytes=None, rss_method=f"n/a: {why}")
            continue
        _memory.release_freed_memory()
        with _memory.RssSampler() as sampler:
            prepared.run(case.steps_per_call(key["mode"]))
        increase = sampler.peak_increase_bytes
        emit(
            "memory",
            **key,
            rss_peak_bytes=None if increase is None else prepared.arg_bytes + increase,
            rss_method="argument bytes + sampled peak rise of resident memory "
            "during one call (buffers returned to the OS on free)",
        )


def run_race(spec: dict, *, meta: bool = True) -> None:
    """One side of the kernel-learning race; `meta`: print its framework's
    versions first (a worker that ran jobs has printed them)."""
    side = importlib.import_module(RACE_SIDES[spec["side"]])
    if meta:
        emit("meta", impl=f"race_{spec['side']}", **side.meta())
    emit("race", side=spec["side"], **side.race(spec))


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        spec = json.load(f)
    if spec["kind"] == "probe":
        from experiments.bench import _jax_impls

        emit("meta", impl="probe", **_jax_impls.meta())
        return
    # A framework's worker: its jobs, then its side of the race (if any).
    if spec["jobs"]:
        run_jobs(spec)
    if spec.get("race"):
        run_race(spec["race"], meta=not spec["jobs"])


if __name__ == "__main__":
    main()
