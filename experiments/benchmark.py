"""Times jconv's convolutions against raw lax, Keras (TensorFlow) and PyTorch,
and races jconv against Keras `model.fit` at learning the document's kernel.

    python -m experiments.benchmark --config=configs/benchmark.py \
        --workdir=runs/benchmark
    python -m experiments.benchmark --config=configs/benchmark_quick.py \
        --workdir=runs/benchmark_quick

Writes results.json, results.md, times.png and race.png into the workdir.
"""

from experiments import runner
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
    bad = [r for r in records if r["status"] in ("mismatch", "failed")]
    if bad:
        names = ", ".join(f"{r['shape']}/{r['impl']}/{r['mode']}/{r['dtype']}"
                          for r in bad[:5])  # fmt: skip
        raise runner.ExperimentError(
            f"{len(bad)} rows failed the answer check or crashed ({names}); "
            "see results.md and logs/"
        )


if __name__ == "__main__":
    runner.main(experiment)
