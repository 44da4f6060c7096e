"""The benchmark: a shrunken quick config end to end (answers checked, outputs
written; no timing assertions), the answer check itself, FLOP counts, config
refusals."""

import doctest
import io
import json
import sys
import types
from contextlib import redirect_stdout

import numpy as np
import pytest

from configs import benchmark_quick
from experiments import runner
from experiments.bench import (
    _cases,
    _machine,
    _timing,
    _worker,
    check_config,
    run_benchmark,
)

SMOKE_SHAPES = ("doc4x4", "stem", "depthwise")  # inner loop, uneven pads, groups


def _smoke_config():
    c = benchmark_quick.get_config()
    c.shapes = SMOKE_SHAPES
    for name in SMOKE_SHAPES:
        c.batch[name] = 1
        c.inner_iters[name] = 5 if name == "doc4x4" else 1
    c.warmup = 0
    c.repeats = 1
    r = c.race
    r.n_images, r.image_size, r.steps = 4, 8, 30
    r.learning_rate = 0.4  # converges in 30 steps, so both sides must agree
    r.repeats = r.keras_repeats = 1
    r.fast_candidates = ("sgd:0.5",)
    r.max_steps = 200
    return c


def test_quick_benchmark_smoke(tmp_path):
    workdir = tmp_path / "bench"
    run_benchmark(_smoke_config(), workdir, quiet=True)
    for name in ("config.json", "metrics.jsonl", "results.json", "results.md",
                 "times.png", "race.png", "summary.json"):  # fmt: skip
        assert (workdir / name).stat().st_size > 0, name
    assert not (workdir / "_scratch").exists()
    saved = json.loads((workdir / "results.json").read_text())
    assert set(saved) == {"machine", "records", "kernel_race"}
    records = saved["records"]
    expected = {
        (s, i, m, d)
        for s in SMOKE_SHAPES
        for i in ("jconv_lax", "lax_raw", "jconv_einsum", "torch", "keras_tf")
        for m in ("fwd", "fwd+bwd")
        for d in ("float32", "bfloat16")
    }
    assert {(r["shape"], r["impl"], r["mode"], r["dtype"]) for r in records} == expected
    for r in records:
        # A peer that cannot run a case says why; nothing may fail the check.
        assert r["status"] in ("ok", "unsupported"), r
        if r["status"] == "unsupported":
            assert r["reason"], r
            continue
        assert r["check"]["passed"], r
        if r["impl"] != "jconv_lax":
            assert set(r["check"]["errors"]) == set(_cases.output_names(r["mode"]))
        assert r["median_seconds"] > 0 and r["gflops"] > 0
        assert r["flops"] == _cases.make_case(r["shape"], 1, 1).flops(r["mode"])
        memory = r["peak_memory_bytes"]
        assert (memory is not None and memory > 0) or r["memory_method"].startswith(
            "n/a"
        ), r
    # Every non-reference JAX/peer row was really compared, torch included.
    assert any(r["impl"] == "torch" and r["status"] == "ok" for r in records)
    assert any(r["impl"] == "keras_tf" and r["status"] == "ok" for r in records)

    race = saved["kernel_race"]
    for key in ("jconv_seconds", "keras_seconds", "speedup_vs_keras",
                "jconv_compile_seconds", "lstsq_seconds", "floor_seconds"):  # fmt: skip
        assert race[key] > 0, key
    # Same data, optimiser, rate and steps: both recover the kernel alike.
    assert race["jconv_kernel_max_abs_error"] < 1e-3
    assert race["keras_kernel_max_abs_error"] < 1e-3
    assert race["keras_iterations"] == race["steps"]
    assert race["to_target"]["sgd:0.5"]["reached"]
    md = (workdir / "results.md").read_text()
    assert "## fwd+bwd, bfloat16" in md and "Kernel-learning race" in md


class _OffByOne:
    """A fake backend whose answer is wrong: it must not be timed."""

    @staticmethod
    def meta():
        return {"platform": "cpu"}

    @staticmethod
    def prepare(impl, case, mode, dtype, arrays):
        from experiments.bench._impl import Prepared

        def outputs():
            return {"y": np.ones(case.out_shape, np.float32) + 1}

        def run(n):
            raise AssertionError("a wrong answer must not be timed")

        return Prepared(outputs=outputs, run=run, arg_bytes=0)


def test_wrong_answer_is_recorded_and_not_timed(tmp_path, monkeypatch):
    case = _cases.make_case("doc4x4", 1, 1)
    np.savez(tmp_path / "in.npz", **_cases.make_inputs(case, 0))
    np.savez(tmp_path / "ref.npz", y=np.ones(case.out_shape, np.float32))
    monkeypatch.setitem(_worker.BACKENDS, "fake", "fake_backend")
    fake = types.SimpleNamespace(meta=_OffByOne.meta, prepare=_OffByOne.prepare)
    monkeypatch.setitem(sys.modules, "fake_backend", fake)
    spec = {
        "kind": "jobs", "warmup": 0, "repeats": 1,
        "tolerance": {"float32": 1e-4, "bfloat16": 2e-2, "float32_gpu": 1e-2},
        "measure_memory": True, "reference_impl": "jconv_lax",
        "reference_platform": "cpu",
        "jobs": [{"impl": "fake", "shape": "doc4x4", "batch": 1, "inner_iters": 1,
                  "mode": "fwd", "dtype": "float32",
                  "inputs": str(tmp_path / "in.npz"),
                  "reference": str(tmp_path / "ref.npz"), "write_reference": False}],
    }  # fmt: skip
    out = io.StringIO()
    with redirect_stdout(out):
        _worker.run_jobs(spec)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    record = next(r for r in rows if r["kind"] == "record")
    assert record["status"] == "mismatch"
    assert record["check"]["errors"]["y"] == pytest.approx(1.0)
    assert "median_seconds" not in record
    assert not any(r["kind"] == "memory" for r in rows)


def test_compare_is_relative_to_the_output_scale():
    ref = {"y": np.array([100.0, -200.0]), "dk": np.array([1e-3, 0.0])}
    close = {"y": ref["y"] + 0.01, "dk": ref["dk"] * (1 + 1e-6)}
    check = _cases.compare(close, ref, 1e-4)
    assert check["passed"] and check["errors"]["y"] == pytest.approx(0.01 / 200)
    far = dict(close, dk=np.array([2e-3, 0.0]))
    assert not _cases.compare(far, ref, 1e-4)["passed"]
    wrong_shape = dict(close, y=np.zeros(3))
    assert _cases.compare(wrong_shape, ref, 1e-4)["errors"]["y"] == float("inf")


def test_shapes_flops_and_pads_by_hand():
    resnet = _cases.make_case("resnet56", 16, 1)
    assert resnet.out_shape == (16, 56, 56, 64)
    assert resnet.flops("fwd") == 2 * 16 * 56 * 56 * 3 * 3 * 64 * 64
    assert resnet.flops("fwd+bwd") == 3 * resnet.flops("fwd")
    stem = _cases.make_case("stem", 2, 1)
    # TensorFlow "same", 224 -> 112 with a 7x7 stride-2 kernel: 5 pads, 2 + 3.
    assert stem.pads == ((2, 3), (2, 3)) and stem.out_shape == (2, 112, 112, 64)
    dw = _cases.make_case("depthwise", 1, 1)
    assert dw.depthwise and dw.kernel_shape == (3, 3, 1, 128)
    assert dw.flops("fwd") == 2 * 56 * 56 * 9 * 128
    doc = _cases.make_case("doc4x4", 1, 1)
    assert doc.out_shape == (1, 2, 2, 1) and doc.flops("fwd") == 2 * 4 * 9


def test_quick_config_covers_every_shape_and_impl():
    c = benchmark_quick.get_config()
    check_config(c)
    assert set(c.shapes) == set(_cases.SHAPES)
    assert set(c.impls) == {"jconv_lax", "lax_raw", "jconv_einsum", "torch", "keras_tf"}
    assert set(c.modes) == {"fwd", "fwd+bwd"} and set(c.dtypes) == {
        "float32",
        "bfloat16",
    }


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("impls", ("jconv_lax", "tf"), r"`config.impls` \(=\('jconv_lax', 'tf'\)\)"),
        ("impls", ("torch",), r"`config.impls` .* must include 'jconv_lax'"),
        ("shapes", ("resnet57",), r"`config.shapes` \(=\('resnet57',\)\)"),
        ("repeats", 0, r"`config.repeats` \(=0\) must be >= 1"),
        ("race.optimizer", "lbfgs", r"`config.race.optimizer` \(='lbfgs'\)"),
        ("race.fast_candidates", ("sgd:-1",), r"`config.race.fast_candidates`"),
        ("batch.mnist", 0, r"`config.batch.mnist` \(=0\) must be a positive int"),
    ],
)
def test_bad_config_is_refused_naming_the_field(field, value, match):
    c = benchmark_quick.get_config()
    *parents, leaf = field.split(".")
    node = c
    for p in parents:
        node = node[p]
    node[leaf] = value
    with pytest.raises(runner.ConfigError, match=match):
        check_config(c)


def test_unknown_config_field_is_refused():
    c = benchmark_quick.get_config()
    c.unlock()
    c.repeat = 3
    with pytest.raises(runner.ConfigError, match=r"`config.repeat` is not a known"):
        check_config(c)


@pytest.mark.parametrize("module", [_machine, _timing])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0
