"""Times jconv's convolutions against raw lax, Keras (TensorFlow) and PyTorch,
and races jconv against Keras `model.fit` at learning the document's kernel.

    python -m experiments.benchmark --config=configs/benchmark.py \
        --workdir=runs/benchmark
    python -m experiments.benchmark --config=configs/benchmark_quick.py \
        --workdir=runs/benchmark_quick
    python3 -m experiments.benchmark --config=configs/benchmark_gpu.py \
        --workdir=runs/benchmark_gpu  # `make bench-gpu`: one GPU, no venv

Writes results.json, results.md, times.png and race.png into the workdir.
"""

import pathlib

from experiments import runner
from experiments.bench import failures as bench_failures
from experiments.bench import run_benchmark


def run(
    config, workdir, *, overwrite=False, quiet=False, allow_optimizer_change=False
) -> dict:
    """Runs the benchmark `config` into `workdir`, prints its headlines and
    returns `results.json`'s object; a wrong jconv answer or a dead worker
    raises `runner.ExperimentError` (exit 1) after everything is written.

    `allow_optimizer_change` is ignored: a benchmark does not resume.
    """
    del allow_optimizer_change
    workdir = pathlib.Path(workdir)
    results = run_benchmark(config, workdir, overwrite=overwrite, quiet=quiet)
    records = results["records"]
    print(f"{len(records)} rows written to {workdir / 'results.md'}")
    race = results.get("kernel_race") or {}
    if "speedup_vs_keras" in race:
        print(
            f"kernel race: jconv {race['jconv_seconds']:.4f} s, Keras "
            f"{race['keras_seconds']:.3f} s ({race['speedup_vs_keras']:.0f}x)"
        )
    wrong = sum(r["status"] == "mismatch" for r in records)
    if wrong:
        print(f"{wrong} rows answered outside the tolerance: recorded, not timed")
    # A peer's wrong answer is a finding; jconv's, or a dead worker, fails.
    failures = bench_failures(results)
    if failures:
        more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
        raise runner.ExperimentError(
            f"{len(failures)} failures: {'; '.join(failures[:3])}{more}; "
            f"see {workdir / 'results.md'} and logs/"
        )
    return results


if __name__ == "__main__":
    runner.main(run)
