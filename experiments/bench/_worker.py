"""One benchmark worker: a fresh process per implementation.

    python -m experiments.bench._worker SPEC.json

Each implementation runs in its own process so that only its framework is
loaded (no idle thread pool of another one competes for the cores), and its
resident memory is its own. The worker prints one JSON object per line on
stdout: `meta` first, a `record` per job as soon as it is timed, then a
`memory` line per job (measured after all timing, see `release_freed_memory`),
or a single `race` result. Framework logs go to stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

import numpy as np

from experiments.bench import _cases, _timing

BACKENDS = {
    "jconv_lax": "experiments.bench._jax_impls",
    "jconv_einsum": "experiments.bench._jax_impls",
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
    check["against"] = spec["reference_impl"]
    return ("ok" if check["passed"] else "mismatch"), check


def run_jobs(spec: dict) -> None:
    impl = spec["impl"]
    backend = importlib.import_module(BACKENDS[impl])
    meta = backend.meta()
    emit("meta", impl=impl, **meta)
    measured = []
    for job in spec["jobs"]:
        case = _cases.make_case(job["shape"], job["batch"], job["inner_iters"])
        key = {k: job[k] for k in ("shape", "mode", "dtype")} | {"impl": impl}
        if not job.get("write_reference") and not os.path.exists(job["reference"]):
            why = f"no reference: {spec['reference_impl']} did not run this case"
            emit("record", **key, status="skipped", reason=why)
            continue
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
            emit("record", **key, status="unsupported", reason=why)
            continue
        record = dict(key, status=status, check=check, **prepared.info)
        if status == "ok":
            record.update(
                _timing.measure(
                    prepared.run,
                    inner_iters=case.inner_iters,
                    warmup=spec["warmup"],
                    repeats=spec["repeats"],
                )
            )
            if case.inner_iters > 1:
                single = _timing.measure(
                    prepared.run, inner_iters=1, warmup=1, repeats=spec["repeats"]
                )
                record["single_call_seconds"] = single["median_seconds"]
            measured.append((key, case, prepared))
        else:
            record["reason"] = "answer differs from the reference: not timed"
        emit("record", **record)
    if spec["measure_memory"] and measured:
        _measure_memory(measured, on_host=meta.get("platform", "cpu") == "cpu")


def _measure_memory(measured, on_host: bool) -> None:
    released = _timing.release_freed_memory()
    for key, case, prepared in measured:
        if not (on_host and released):
            why = (
                "host RSS does not see accelerator memory"
                if not on_host
                else "freed memory cannot be released (not glibc)"
            )
            emit("memory", **key, rss_peak_bytes=None, rss_method=f"n/a: {why}")
            continue
        _timing.release_freed_memory()
        with _timing.RssSampler() as sampler:
            prepared.run(case.inner_iters)
        increase = sampler.peak_increase_bytes
        emit(
            "memory",
            **key,
            rss_peak_bytes=None if increase is None else prepared.arg_bytes + increase,
            rss_method="argument bytes + sampled peak rise of resident memory "
            "during one call (buffers returned to the OS on free)",
        )


def run_race(spec: dict) -> None:
    side = importlib.import_module(RACE_SIDES[spec["side"]])
    emit("meta", impl=f"race_{spec['side']}", **side.meta())
    emit("race", side=spec["side"], **side.race(spec))


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        spec = json.load(f)
    if spec["kind"] == "probe":
        from experiments.bench import _jax_impls

        emit("meta", impl="probe", **_jax_impls.meta())
    elif spec["kind"] == "race":
        run_race(spec)
    else:
        run_jobs(spec)


if __name__ == "__main__":
    main()
