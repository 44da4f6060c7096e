"""Times jconv's convolutions against raw lax, Keras (TensorFlow) and PyTorch,
and races jconv against Keras `model.fit` at learning the document's kernel.

    python -m experiments.benchmark --config=configs/benchmark.py \
        --workdir=runs/benchmark
    python -m experiments.benchmark --config=configs/benchmark_quick.py \
        --workdir=runs/benchmark_quick

Writes results.json, results.md, times.png and race.png into the workdir.
"""

from experiments import runner
from experiments.bench import failures as bench_failures
from experiments.bench import run_benchmark


def experiment(args: runner.Args) -> None:
    results = run_benchmark(
        args.config, args.workdir, overwrite=args.overwrite, quiet=args.quiet
    )
    records = results["records"]
    print(f"{len(records)} rows written to {args.workdir / 'results.md'}")
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
            f"see {args.workdir / 'results.md'} and logs/"
        )


if __name__ == "__main__":
    runner.main(experiment)
