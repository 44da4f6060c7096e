"""The benchmark: a shrunken quick config end to end (answers checked, outputs
written; no timing assertions), its 1-D and 3-D rows end to end against both
peers, the GPU config's path on the CPU, what a wrong answer does to the run,
the answer check itself, the jconv_auto summary and the in_scan ratios on
hand-made records (split by spatial rank), FLOP counts, config refusals."""

import doctest
import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest

from configs import benchmark as benchmark_config
from configs import benchmark_gpu, benchmark_kernels, benchmark_quick
from experiments import benchmark, runner
from experiments.bench import (
    _cases,
    _machine,
    _memory,
    _report,
    _timer,
    _worker,
    check_config,
    failures,
)

WRONG = "experiments.bench._wrong_impl"  # a backend whose outputs are all zeros
JCONV = (
    "jconv_auto", "jconv_lax", "jconv_einsum", "jconv_onednn", "jconv_fft",
    "jconv_winograd",
)  # fmt: skip
IN_SCAN = ("jconv_auto", "jconv_lax", "jconv_einsum", "jconv_onednn")
IMPLS = (*JCONV[:3], "lax_raw", *JCONV[3:], "torch", "keras_tf")

SMOKE_SHAPES = ("doc4x4", "depthwise_s2")  # inner loop; uneven pads and groups
# Every path of the machinery once: auto (its plan), lax (the reference, and
# its same-program check against lax_raw), raw lax, Winograd's own core (run on
# doc4x4, left out on the strided depthwise), oneDNN (its custom call; skipped
# with the reason where it cannot run) and both peers. jconv_einsum and
# jconv_fft go through jconv_auto's path with another `impl` (their answers
# are the rest of the suite's business), so they are left out here. One dtype:
# bfloat16's tolerance and inputs run through the machinery in
# test_only_a_wrong_jconv_answer_fails_the_run.
SMOKE_IMPLS = (
    "jconv_auto", "jconv_lax", "lax_raw", "jconv_winograd", "jconv_onednn",
    "torch", "keras_tf",
)  # fmt: skip


def _smoke_config():
    c = benchmark_quick.get_config()
    c.shapes = SMOKE_SHAPES
    c.impls = SMOKE_IMPLS
    c.dtypes = ("float32",)
    for name in SMOKE_SHAPES:
        c.batch[name] = 1
        c.inner_iters[name] = 5 if name == "doc4x4" else 1
    # One implementation in a scan covers the mode; the others' rows are then
    # skipped by the config, which is covered too.
    c.in_scan_impls = ("jconv_auto",)
    c.warmup = 0
    c.repeats = 1
    c.scan_repeats = 1
    r = c.race
    r.n_images, r.image_size, r.steps = 4, 8, 30
    r.learning_rate = 0.4  # converges in 30 steps, so both sides must agree
    r.repeats = r.keras_repeats = 1
    r.fast_candidates = ("sgd:0.5",)
    r.max_steps = 200
    return c


def test_quick_benchmark_smoke(tmp_path):
    workdir = tmp_path / "bench"
    # Through the script: it returns (exit 0) whatever the peers answer here.
    benchmark.run(_smoke_config(), workdir, quiet=True)
    for name in ("config.json", "metrics.jsonl", "results.json", "results.md",
                 "times.png", "race.png", "summary.json"):  # fmt: skip
        assert (workdir / name).stat().st_size > 0, name
    assert not (workdir / "_scratch").exists()
    saved = json.loads((workdir / "results.json").read_text())
    assert set(saved) == {"machine", "records", "kernel_race"}
    records = saved["records"]
    onednn = saved["machine"]["jconv_onednn"]
    expected = {
        _cases.RowKey(s, i, m, d)
        for s in SMOKE_SHAPES
        for i in SMOKE_IMPLS
        for m in ("fwd", "fwd+bwd", "in_scan")
        for d in ("float32",)
    }
    assert {_cases.RowKey.of(r) for r in records} == expected
    for r in records:
        if r["mode"] == "in_scan" and r["impl"] != "jconv_auto":
            # No scan in the peers; the other JAX rows left out by the config.
            assert r["status"] == "skipped", r
            peer = r["impl"] in ("torch", "keras_tf")
            why = "lax.scan" if peer else "in_scan_impls"
            assert why in r["reason"], r
            continue
        if r["impl"] == "jconv_winograd" and r["shape"] == "depthwise_s2":
            # Winograd computes 3x3 kernels at stride 1 only: left out.
            assert r["status"] == "skipped" and r["by_config"], r
            assert "3x3 kernels at stride 1" in r["reason"], r
            continue
        if r["impl"] == "jconv_onednn" and not onednn["available"]:
            # Not built or not loaded here: skipped, saying why, no failure.
            assert r["status"] == "skipped" and r["by_config"], r
            assert r["reason"] == f"oneDNN unavailable: {onednn['reason']}", r
            continue
        # jconv must pass; a peer may miss the tolerance on this CPU (TensorFlow's
        # bfloat16 without AVX-512) or refuse a case, and says which.
        allowed = ("ok",) if r["impl"] in JCONV else ("ok", "mismatch", "unsupported")
        assert r["status"] in allowed, r
        if r["status"] == "unsupported":
            assert r["reason"], r
            continue
        if r["impl"] != "jconv_lax":
            assert set(r["check"]["errors"]) == set(_cases.output_names(r["mode"]))
        if r["status"] == "mismatch":
            assert not r["check"]["passed"] and "median_seconds" not in r, r
            continue
        assert r["check"]["passed"], r
        assert r["median_seconds"] > 0 and r["gflops"] > 0
        assert r["flops"] == _cases.make_case(r["shape"], 1, 1).flops(r["mode"])
        if r["mode"] == "in_scan":
            # The last step's answers, checked against jconv_lax's fwd+bwd.
            assert r["check"]["against"] == "jconv_lax fwd+bwd", r
            assert set(r["check"]["errors"]) == {"y", "dx", "dk"}
            assert r["scan_steps"] == 10 and r["via"].startswith("jconv."), r
        memory = r["peak_memory_bytes"]
        assert (memory is not None and memory > 0) or r["memory_method"].startswith(
            "n/a"
        ), r
    # Every peer ran and was compared (not asserted: what it answered).
    for impl in ("lax_raw", "torch", "keras_tf"):
        assert any(r["impl"] == impl and "check" in r for r in records), impl

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
    assert "## fwd+bwd, float32" in md and "Kernel-learning race" in md
    # in_scan beside top level, the peers' columns left out of its table.
    assert "## in_scan, float32" in md
    in_scan_header = md.split("## in_scan, float32")[1].splitlines()[2]
    assert "jconv_auto" in in_scan_header and "torch" not in in_scan_header
    assert "## Inside lax.scan against top level (fwd+bwd)" in md
    assert "- torch (2 rows: in_scan; doc4x4, depthwise_s2;" in md
    summary = json.loads((workdir / "summary.json").read_text())
    assert {(r["shape"], r["impl"]) for r in summary["in_scan_over_fwd_bwd"]} == {
        (s, "jconv_auto") for s in SMOKE_SHAPES
    }
    # One jconv_auto line per mode, against both peers.
    lines = [line for line in md.splitlines() if line.startswith("- **")]
    assert len(lines) == len(summary["jconv_auto"]) == 3
    for a in summary["jconv_auto"]:
        assert a["shapes_vs_peer"] == len(SMOKE_SHAPES), a
        assert a["peer_mode"] == ("fwd+bwd" if a["mode"] == "in_scan" else a["mode"])
    assert summary["outputs"] == [
        "results.json", "results.md", "times.png", "race.png"
    ]  # fmt: skip

    # The machine: the CPU features and TensorFlow's oneDNN state, whatever
    # their values here.
    features = saved["machine"]["host"]["cpu_features"]
    assert set(features) == set(_machine.CPU_FEATURES)
    assert all(isinstance(v, bool) for v in features.values())
    onednn = saved["machine"]["tensorflow_onednn"]
    assert isinstance(onednn["enabled"], bool)
    assert onednn["enabled_from"] == "tensorflow IsMklEnabled()"
    machine_line = next(line for line in md.splitlines() if line.startswith("Machine"))
    assert "avx512f" in machine_line and "TF_ENABLE_ONEDNN_OPTS=" in machine_line
    assert "; jconv oneDNN " in machine_line


# A 1-D and a 3-D layer through every peer: WaveNet's causal layer (Keras
# Conv1D's padding="causal", PyTorch's F.pad then conv1d; dilation 8) and
# VoxNet's 3x3x3 "valid" layer (Conv3D, conv3d). One image each: cheap.
RANK_SHAPES = ("wavenet_d8", "voxnet_conv2")
RANK_IMPLS = ("jconv_auto", "jconv_lax", "jconv_onednn", "torch", "keras_tf")


def test_1d_and_3d_rows_smoke(tmp_path):
    c = _smoke_config()
    c.shapes, c.impls = RANK_SHAPES, RANK_IMPLS
    for name in RANK_SHAPES:
        c.batch[name], c.inner_iters[name] = 1, 1
    # fwd+bwd runs the forward too; the other modes' code is the 2-D smoke's.
    c.modes = ("fwd+bwd",)
    c.race.enabled = False
    results = benchmark.run(c, tmp_path / "ranks", quiet=True)
    records = results["records"]
    assert {_cases.RowKey.of(r) for r in records} == {
        _cases.RowKey(s, i, m, "float32")
        for s in RANK_SHAPES
        for i in RANK_IMPLS
        for m in c.modes
    }
    onednn = results["machine"]["jconv_onednn"]
    apis = {
        ("wavenet_d8", "jconv_auto"): "jconv.conv(impl='auto')",
        ("wavenet_d8", "torch"): "torch.nn.functional.conv1d (F.pad first: causal: "
        "zeros on the left)",
        ("wavenet_d8", "keras_tf"): "keras.layers.Conv1D in tf.function (no XLA)",
        ("voxnet_conv2", "jconv_auto"): "jconv.conv(impl='auto')",
        ("voxnet_conv2", "torch"): "torch.nn.functional.conv3d",
        ("voxnet_conv2", "keras_tf"): "keras.layers.Conv3D in tf.function (no XLA)",
    }
    for r in records:
        case = _cases.make_case(r["shape"], 1, 1)
        assert r["x_shape"] == list(case.x_shape), r
        assert r["flops"] == case.flops(r["mode"]), r
        assert r.get("dilation_rate") == ([8] if r["shape"] == "wavenet_d8" else None)
        if r["mode"] == "in_scan" and r["impl"] != "jconv_auto":
            assert r["status"] == "skipped", r
            continue
        if r["impl"] == "jconv_onednn" and (
            not onednn["available"] or case.rank not in onednn["ranks"]
        ):
            # jconv says where impl="onednn" does not run (here: 3-D).
            assert r["status"] == "skipped" and r["by_config"], r
            assert r["reason"].startswith("oneDNN unavailable") or (
                "(jconv._onednn.RANKS)" in r["reason"]
            ), r
            continue
        # jconv must pass; a peer may miss the tolerance or refuse the case,
        # and its row says which.
        allowed = ("ok",) if r["impl"] in JCONV else ("ok", "mismatch", "unsupported")
        assert r["status"] in allowed, r
        if r["status"] == "unsupported":
            assert r["reason"], r
            continue
        if (r["shape"], r["impl"]) in apis:
            assert r["via"] == apis[(r["shape"], r["impl"])], r
        letters = "W" if case.rank == 1 else "DHW"
        assert r["layout"].startswith(
            f"NC{letters} / OI{letters}"
            if r["impl"] == "torch"
            else f"N{letters}C / {letters}IO"
        ), r
        if r["impl"] != "jconv_lax":
            assert set(r["check"]["errors"]) == set(_cases.output_names(r["mode"]))
        if r["status"] == "ok":
            assert r["median_seconds"] > 0, r
    for impl in ("torch", "keras_tf"):
        for shape in RANK_SHAPES:
            assert any(
                r["impl"] == impl and r["shape"] == shape and "check" in r
                for r in records
            ), (impl, shape)

    md = (tmp_path / "ranks" / "results.md").read_text()
    # Their own tables and summary lines; no 2-D table without 2-D rows.
    for mode in c.modes:
        assert f"## {mode}, float32, 1-D and 3-D" in md
        assert f"- **{mode}, float32, 1-D and 3-D**" in md
        assert f"## {mode}, float32\n" not in md
    assert "`wavenet_d8` x(1, 4096, 64) k(2, 64, 64) causal dilation 8" in md
    assert "`voxnet_conv2` x(1, 14, 14, 14, 32) k(3, 3, 3, 32, 32) valid" in md
    assert "| fwd+bwd, 1-D and 3-D | float32 | " in md
    summary = json.loads((tmp_path / "ranks" / "summary.json").read_text())
    assert [a["ranks"] for a in summary["jconv_auto"]] == [[1, 3]] * len(c.modes)


def test_tables_and_summaries_split_by_rank():
    """The 2-D rows read as they always did; the 1-D and 3-D rows get tables
    and summary lines of their own."""
    records = [
        _row(shape, impl, "fwd", seconds, min_seconds=seconds)
        for shape, impl, seconds in [
            ("mnist", "jconv_auto", 1.0), ("mnist", "torch", 2.0),
            ("resnet1d", "jconv_auto", 3.0), ("resnet1d", "torch", 1.0),
            ("unet3d", "jconv_auto", 1.0), ("unet3d", "keras_tf", 1.0),
        ]
    ]  # fmt: skip
    assert _report.rank_groups(records) == [(2,), (1, 3)]
    assert [_report.record_rank(r) for r in records[::2]] == [2, 1, 3]
    two, others = _report.auto_summary(records)
    assert (two["ranks"], two["shapes_vs_peer"], two["wins_vs_peer"]) == ([2], 1, 1)
    assert (others["ranks"], others["shapes_vs_peer"]) == ([1, 3], 2)
    assert others["geomean_vs_peer"] == pytest.approx(3.0**0.5)
    assert others["fastest_peer"] == {"resnet1d": "torch", "unet3d": "keras_tf"}
    lines = _report.summary_lines(records)
    assert lines[0].startswith("- **fwd, float32**: jconv_auto at least as fast ")
    assert lines[1].startswith(
        "- **fwd, float32, 1-D and 3-D**: jconv_auto at least as fast as the "
        "fastest peer on 1 of 2 shapes"
    )
    table = _report.peer_table_lines(records)
    assert table[5:7] == [
        "| fwd | float32 | 0.50x (1 of 1) |",
        "| fwd, 1-D and 3-D | float32 | 1.73x (1 of 2) |",
    ]
    md = _report._mode_table(
        _report._index(records), records, ["jconv_auto", "torch", "keras_tf"],
        "fwd", "float32", (1, 3),
    )  # fmt: skip
    assert md[1] == "## fwd, float32, 1-D and 3-D"
    assert md[5].startswith("| resnet1d | 3.00 s (min 3.00 s) · n/a | 1.00 s ")


def test_keras_refuses_causal_padding_outside_1d():
    from experiments.bench import _impl, _keras_impl

    causal3d = _cases.Geometry((4, 4, 4), 2, 2, (2, 2, 2), padding="causal")
    case = _cases.ConvCase("causal3d", causal3d, 1, 1)
    with pytest.raises(_impl.Unsupported, match=r'"causal" in Conv1D only'):
        _keras_impl.make_layer(case, "float32")
    # Keras has no DepthwiseConv3D: a grouped Conv3D, kernel as jconv's.
    depthwise3d = _cases.Geometry((4, 4, 4), 3, 3, (3, 3, 3), groups=3)
    layer, shape = _keras_impl.make_layer(
        _cases.ConvCase("dw3d", depthwise3d, 1, 1), "float32"
    )
    assert type(layer).__name__ == "Conv3D" and shape == (3, 3, 3, 1, 3)


@pytest.mark.parametrize(
    "wrong, onednn_off",
    [(("torch",), False), (("torch", "jconv_einsum"), True)],
    ids=["peer_wrong_exit_0", "jconv_wrong_onednn_off_exit_1"],
)
def test_only_a_wrong_jconv_answer_fails_the_run(
    wrong, onednn_off, tmp_path, monkeypatch, capsys
):
    for impl in wrong:
        monkeypatch.setitem(_worker.BACKENDS, impl, WRONG)
    # The workers inherit the environment: with JCONV_ONEDNN=0 jconv_onednn
    # cannot run, and its rows are skipped with jconv's reason, no failure.
    # (With it on, where the extension loads, its bfloat16 rows run here.)
    monkeypatch.setenv("JCONV_ONEDNN", "0" if onednn_off else "1")
    workdir = tmp_path / "bench"
    argv = [
        f"--config={benchmark_quick.__file__}", f"--workdir={workdir}", "--quiet",
        "--config.shapes=('doc4x4',)", "--config.dtypes=('bfloat16',)",
        "--config.impls=('jconv_lax', 'jconv_einsum', 'jconv_onednn', 'torch')",
        "--config.modes=('fwd', 'fwd+bwd')", "--config.warmup=0",
        "--config.repeats=1", "--config.race.enabled=False",
    ]  # fmt: skip
    jconv_wrong = "jconv_einsum" in wrong
    if jconv_wrong:
        with pytest.raises(SystemExit) as exit_:
            runner.main(benchmark.run, argv)
        assert exit_.value.code == 1
    else:
        runner.main(benchmark.run, argv)  # returns: exit code 0
    err = capsys.readouterr().err.strip()
    saved = json.loads((workdir / "results.json").read_text())
    records = saved["records"]
    md = (workdir / "results.md").read_text()
    assert {r["impl"] for r in records} == {
        "jconv_lax", "jconv_einsum", "jconv_onednn", "torch"
    }  # fmt: skip
    onednn = saved["machine"]["jconv_onednn"]
    if onednn_off:
        assert onednn == {
            "available": False, "version": onednn["version"],
            "reason": "impl='onednn' cannot run here: disabled by JCONV_ONEDNN=0 "
            "in the environment", "ranks": onednn["ranks"],
        }  # fmt: skip
        assert f"jconv oneDNN unavailable ({onednn['reason']})" in md
    for r in records:
        if r["impl"] == "jconv_onednn" and not onednn["available"]:
            assert r["status"] == "skipped" and r["by_config"], r
            assert r["reason"] == f"oneDNN unavailable: {onednn['reason']}", r
            continue
        if r["impl"] not in wrong:
            assert r["status"] == "ok", r
            continue
        # Recorded with the error it had (zeros: exactly 1), never timed.
        assert r["status"] == "mismatch" and "median_seconds" not in r, r
        names = _cases.output_names(r["mode"])
        assert r["check"]["errors"] == dict.fromkeys(names, 1.0)
        assert r["check"]["tolerance"] == 2e-2
        errors = ", ".join(f"{n} 1" for n in names)
        assert (
            f"- doc4x4 {r['impl']} {r['mode']} bfloat16: mismatch: answer differs "
            f"from the reference: not timed (error max|out - ref| / max|ref|: "
            f"{errors}; tolerance 0.02)"
        ) in md
    assert "| doc4x4 | " in md and "mismatch (1 > 0.02)¹" in md
    if jconv_wrong:
        # One line naming the jconv rows; the peer's wrong answer and the
        # oneDNN rows skipped for want of it are no failures.
        assert len(err.splitlines()) == 1 and err.startswith("error: 2 failures: ")
        assert "doc4x4/jconv_einsum/fwd/bfloat16 mismatch" in err
        assert "doc4x4/jconv_einsum/fwd+bwd/bfloat16 mismatch" in err
        assert "torch" not in err and "onednn" not in err
        assert (
            "- jconv_onednn (2 rows: fwd, fwd+bwd; doc4x4; bfloat16): skipped: "
            f"oneDNN unavailable: {onednn['reason']}"
        ) in md
    else:
        assert err == ""


def test_failures_are_jconv_rows_and_dead_workers():
    wrong = {"errors": {"y": 0.05}, "tolerance": 0.02, "passed": False}

    def row(impl, status, **fields):
        key = _cases.RowKey("mnist", impl, "fwd", "bfloat16")
        return dict(key._asdict(), status=status, **fields)

    findings = [
        row("jconv_lax", "ok"),
        row("keras_tf", "mismatch", check=wrong, reason="not timed"),
        row("lax_raw", "mismatch", check=wrong, reason="not timed"),
        row("torch", "unsupported", reason="RuntimeError: no bfloat16 kernel"),
        row("torch", "skipped", reason="CPU-only build"),
        # Left out by the config (config.in_scan_impls): no failure either.
        row("jconv_lax", "skipped", reason="not in config", by_config=True),
    ]
    assert failures({"records": findings, "kernel_race": None}) == []
    died = "worker exited with code -9; see logs/torch.log"
    jconv_wrong = row("jconv_einsum", "mismatch", check=wrong, reason="not timed")
    results = {
        "records": [*findings, jconv_wrong, row("torch", "failed", reason=died)],
        "kernel_race": {"errors": {"keras": died}},
    }
    assert failures(results) == [
        "mnist/jconv_einsum/fwd/bfloat16 mismatch: not timed (error max|out - ref| "
        "/ max|ref|: y 0.05; tolerance 0.02)",
        f"mnist/torch/fwd/bfloat16 failed: {died}",
        f"race keras: {died}",
    ]
    assert _report.summary(results, [])["failures"] == failures(results)


def test_wrong_answer_is_recorded_and_not_timed(tmp_path):
    case = _cases.make_case("doc4x4", 1, 1)
    np.savez(tmp_path / "in.npz", **_cases.make_inputs(case, 0))
    np.savez(tmp_path / "ref.npz", y=np.ones(case.out_shape, np.float32))
    spec = {
        "kind": "jobs", "warmup": 0, "repeats": 1, "scan_repeats": 1,
        "tolerance": {"float32": 1e-4, "bfloat16": 2e-2, "float32_gpu": 1e-2},
        "measure_memory": True, "reference_impl": "jconv_lax",
        "reference_platform": "cpu", "backends": {"torch": WRONG},
        "jobs": [{"impl": "torch", "shape": "doc4x4", "batch": 1, "inner_iters": 1,
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
    assert dw.flops("in_scan") == dw.flops("fwd+bwd")  # per step
    convnext = _cases.make_case("convnext_dw7", 2, 1)
    assert convnext.depthwise and convnext.kernel_shape == (7, 7, 1, 96)
    assert convnext.pads == ((3, 3), (3, 3)) and convnext.out_shape == (2, 56, 56, 96)
    resnext = _cases.make_case("resnext28", 1, 1)
    assert not resnext.depthwise and resnext.kernel_shape == (3, 3, 4, 128)
    assert resnext.flops("fwd") == 2 * 28 * 28 * 9 * 4 * 128
    pointwise = _cases.make_case("pointwise28", 1, 1)
    assert (
        pointwise.kernel_shape == (1, 1, 256, 512) and pointwise.pads == ((0, 0),) * 2
    )
    assert pointwise.flops("fwd") == 2 * 28 * 28 * 256 * 512
    # "same" 112 -> 56 with a 3x3 stride-2 kernel: 1 pad, at the end.
    dw_s2 = _cases.make_case("depthwise_s2", 1, 1)
    assert dw_s2.depthwise and dw_s2.pads == ((0, 1), (0, 1))
    assert dw_s2.out_shape == (1, 56, 56, 64)
    # A scan of 10 steps, or of inner_iters where that is more.
    assert (dw.scan_steps, dw.steps_per_call("in_scan"), dw.steps_per_call("fwd")) == (
        10, 10, 1
    )  # fmt: skip
    assert _cases.make_case("doc4x4", 1, 2000).steps_per_call("in_scan") == 2000
    doc = _cases.make_case("doc4x4", 1, 1)
    assert doc.out_shape == (1, 2, 2, 1) and doc.flops("fwd") == 2 * 4 * 9
    # Keras Conv1D's causal padding: dilation * (k - 1) = 8 zeros on the left.
    wavenet = _cases.make_case("wavenet_d8", 8, 1)
    assert wavenet.rank == 1 and wavenet.pads == ((8, 0),)
    assert wavenet.kernel_shape == (2, 64, 64) and wavenet.out_shape == (8, 4096, 64)
    assert wavenet.flops("fwd") == 2 * 8 * 4096 * 2 * 64 * 64
    assert wavenet.describe()["dilation_rate"] == [8]
    resnet1d = _cases.make_case("resnet1d", 16, 1)
    assert resnet1d.pads == ((1, 1),) and resnet1d.out_shape == (16, 1024, 64)
    assert "dilation_rate" not in resnet1d.describe()  # as the 2-D rows' records
    voxnet = _cases.make_case("voxnet_conv2", 4, 1)
    assert voxnet.rank == 3 and voxnet.pads == ((0, 0),) * 3
    assert voxnet.out_shape == (4, 12, 12, 12, 32)
    assert voxnet.flops("fwd") == 2 * 4 * 12**3 * 27 * 32 * 32
    unet = _cases.make_case("unet3d", 1, 1)
    assert unet.kernel_shape == (3, 3, 3, 32, 32) and unet.pads == ((1, 1),) * 3
    assert unet.out_shape == (1, 32, 32, 32, 32)
    assert not any(
        _cases.winograd_applies(_cases.SHAPES[s]) for s in ("resnet1d", "unet3d")
    )
    arrays = _cases.make_inputs(wavenet, 0)
    assert arrays["x"].shape == wavenet.x_shape and arrays["ct"].shape == (8, 4096, 64)
    with pytest.raises(ValueError, match=r"`hw` \(=\(4,\)\) and `kernel_hw`"):
        _cases.Geometry((4,), 1, 1, (3, 3))


def test_quick_config_covers_every_shape_and_impl():
    c = benchmark_quick.get_config()
    check_config(c)
    # Every shape of the full config but unet3d (seconds per in_scan row on
    # XLA:CPU), so a small layer of every spatial rank.
    assert set(c.shapes) == set(benchmark_config.SHAPES) - {"unet3d"}
    assert {_cases.SHAPES[s].rank for s in c.shapes} == {1, 2, 3}
    assert set(c.impls) == set(IMPLS) - {"jconv_fft", "jconv_winograd"}
    assert c.modes == _cases.MODES and c.dtypes == _cases.DTYPES
    assert set(c.in_scan_impls) == set(IN_SCAN)
    # The large kernels (seconds a row for the direct sums) and the fast
    # algorithms' columns in their own config.
    kernels = benchmark_kernels.get_config()
    check_config(kernels)
    full = benchmark_config.get_config()
    assert set(full.shapes) | set(kernels.shapes) == set(_cases.SHAPES)
    assert set(c.impls) | set(kernels.impls) == set(IMPLS)
    assert set(benchmark_config.LARGE_KERNEL_SHAPES) <= set(kernels.shapes)
    assert set(c.race.impls) == {"einsum", "lax"}


def test_gpu_config_runs_on_a_cpu_only_machine(tmp_path):
    c = benchmark_gpu.get_config()
    check_config(c)
    assert c.impls == ("jconv_auto", "jconv_lax", "lax_raw", "jconv_onednn", "torch")
    assert c.in_scan_impls == ("jconv_auto", "jconv_lax", "jconv_onednn")
    assert c.peers_on_gpu_machine and not c.race.enabled
    assert set(c.shapes) <= set(c.gpu_batch) and "in_scan" in c.modes
    assert {_cases.SHAPES[s].rank for s in c.shapes} == {1, 2, 3}
    # Without a GPU it runs at the quick config's CPU batch sizes, PyTorch
    # on the CPU too: shrunk to one small shape and dtype here.
    assert c.batch == benchmark_quick.get_config().batch
    c.shapes, c.dtypes = ("doc4x4",), ("float32",)
    c.warmup, c.repeats, c.scan_repeats = 0, 1, 1
    results = benchmark.run(c, tmp_path / "gpu", quiet=True)
    records = {(r["impl"], r["mode"]): r for r in results["records"]}
    assert set(records) == {(i, m) for i in c.impls for m in _cases.MODES}
    onednn = results["machine"]["jconv_onednn"]
    for (impl, mode), r in records.items():
        if mode == "in_scan" and impl in ("torch", "lax_raw"):
            assert r["status"] == "skipped" and r["by_config"], r
            continue
        if impl == "jconv_onednn" and not onednn["available"]:
            # On the CPU it runs where its extension loads (on a GPU the
            # orchestrator skips it: test_onednn_state_refuses_a_gpu_backend).
            assert r["status"] == "skipped" and r["by_config"], r
            assert r["reason"] == f"oneDNN unavailable: {onednn['reason']}"
            continue
        assert r["status"] == "ok" and r["device"] == "cpu", r
        assert "tflops" not in r  # a GPU row's TFLOP/s and percent of peak
    assert records[("jconv_lax", "in_scan")]["scan_steps"] == 100  # inner_iters
    md = (tmp_path / "gpu" / "results.md").read_text()
    assert "| doc4x4 | float32 | " in md.split("## Inside lax.scan")[1]


def _row(shape, impl, mode, seconds, dtype="float32", **fields):
    key = _cases.RowKey(shape, impl, mode, dtype)
    return dict(key._asdict(), status="ok", median_seconds=seconds, **fields)


def test_auto_summary_against_the_fastest_peer_and_jconv_lax():
    records = [
        # a: auto beats both peers (torch the faster) and equals lax's program.
        _row("a", "jconv_auto", "fwd", 1.0, program_digest="p"),
        _row("a", "jconv_lax", "fwd", 0.9, program_digest="p"),
        _row("a", "torch", "fwd", 2.0),
        _row("a", "keras_tf", "fwd", 4.0),
        _row("a", "lax_raw", "fwd", 1.0),
        _row("a", "jconv_onednn", "fwd", 2.08),  # within 5% of torch
        # b: the peer wins; auto faster than lax; keras_tf did not run.
        _row("b", "jconv_auto", "fwd", 2.0, program_digest="q"),
        _row("b", "jconv_lax", "fwd", 3.0, program_digest="r"),
        _row("b", "torch", "fwd", 1.0),
        _row("b", "jconv_onednn", "fwd", 1.0),  # as fast as torch
        dict(_cases.RowKey("b", "keras_tf", "fwd", "float32")._asdict(),
             status="unsupported", reason="no kernel"),
        # c: in a scan only jconv ran; the peers' fwd+bwd stand in for theirs.
        _row("c", "jconv_auto", "in_scan", 1.0, program_digest="s"),
        _row("c", "jconv_lax", "in_scan", 1.5, program_digest="t"),
        _row("c", "jconv_auto", "fwd+bwd", 1.0, program_digest="s2"),
        _row("c", "jconv_lax", "fwd+bwd", 1.0, program_digest="t2"),
        _row("c", "keras_tf", "fwd+bwd", 4.0),
        dict(_cases.RowKey("c", "keras_tf", "in_scan", "float32")._asdict(),
             status="skipped", reason="JAX only"),
    ]  # fmt: skip
    fwd, fwd_bwd, in_scan = _report.auto_summary(records)
    assert (fwd["mode"], fwd["shapes_vs_peer"], fwd["wins_vs_peer"]) == ("fwd", 2, 1)
    assert fwd["near_peer"] == 1  # b: 2x torch's time
    assert fwd["geomean_vs_peer"] == pytest.approx((0.5 * 2.0) ** 0.5)
    assert fwd["fastest_peer"] == {"a": "torch", "b": "torch"}
    assert (fwd["shapes_vs_lax_raw"], fwd["wins_vs_lax_raw"]) == (1, 1)
    assert fwd["slower_than_jconv_lax"] == [
        {"shape": "a", "ratio": pytest.approx(1 / 0.9), "same_program": True}
    ]
    assert fwd_bwd["slower_than_jconv_lax"] == [] and fwd_bwd["shapes_vs_peer"] == 1
    assert in_scan["peer_mode"] == "fwd+bwd" and in_scan["fastest_peer"] == {
        "c": "keras_tf"
    }
    assert in_scan["geomean_vs_peer"] == pytest.approx(0.25)
    lines = _report.summary_lines(records)
    assert lines[0] == (
        "- **fwd, float32**: jconv_auto at least as fast as the fastest peer on "
        "1 of 2 shapes (within 5% of it on 1), geometric mean jconv_auto / "
        "fastest peer 1.00x; against lax_raw: 1 of 1, 1.00x; never slower than "
        "jconv_lax (and by timing noise, same program, on a 1.11x)."
    )
    assert lines[2].startswith(
        "- **in_scan, float32** (peers have no scan: against their fwd+bwd): "
    )
    assert lines[2].endswith("never slower than jconv_lax.")
    # Every jconv implementation against the fastest peer, per mode.
    by_impl = {(p["mode"], p["impl"]): p for p in _report.peer_summary(records)}
    assert set(by_impl) == {
        ("fwd", "jconv_auto"), ("fwd", "jconv_lax"), ("fwd", "jconv_onednn"),
        ("fwd+bwd", "jconv_auto"), ("fwd+bwd", "jconv_lax"),
        ("in_scan", "jconv_auto"), ("in_scan", "jconv_lax"),
    }  # fmt: skip
    onednn = by_impl[("fwd", "jconv_onednn")]
    assert (onednn["shapes"], onednn["wins"], onednn["near"]) == (2, 1, 2)
    assert onednn["geomean"] == pytest.approx((2.08 / 2.0) ** 0.5)
    lax = by_impl[("fwd", "jconv_lax")]  # a: 0.9 / 2, b: 3 / 1
    assert (lax["wins"], lax["near"], lax["geomean"]) == (
        1,
        1,
        pytest.approx(1.35**0.5),
    )
    assert by_impl[("in_scan", "jconv_lax")]["geomean"] == pytest.approx(1.5 / 4)
    table = _report.peer_table_lines(records)
    assert table[3] == "| mode | dtype | jconv_auto | jconv_lax | jconv_onednn |"
    assert (
        table[5]
        == "| fwd | float32 | 1.00x (1 of 2) | 1.16x (1 of 2) | 1.02x (2 of 2) |"
    )
    assert table[7] == "| in_scan | float32 | 0.25x (1 of 1) | 0.38x (1 of 1) | — |"
    # c's ratio in a scan over top level: 1.0 for auto, 1.5 for lax (over 1.2).
    table = "\n".join(_report.scan_lines(_report._index(records), ["c"]))
    assert "| c | float32 | 1.00x | 1.50x |" in table
    assert "Over 1.2x: jconv_lax c float32 1.50x (1 of 2 jconv rows)." in table


def test_onednn_state_refuses_a_gpu_backend(monkeypatch):
    """What the probe reports where JAX runs on a GPU: unavailable, in jconv's
    words (where the extension loads; else the reason it does not)."""
    import jax

    from experiments.bench import _jax_impls
    from jconv import _onednn

    loaded = _onednn.status()
    assert _jax_impls.onednn_state()["available"] == (
        loaded.available and jax.default_backend() == "cpu"
    )
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    state = _jax_impls.onednn_state()
    assert not state["available"] and state["version"] == loaded.version
    if loaded.available:
        assert "impl='onednn' runs on the CPU" in state["reason"], state
        assert "'gpu'" in state["reason"], state
    else:
        assert loaded.reason in state["reason"], state


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
        ("modes", ("fwd", "in_scan"), r"`config.modes` .* must include 'fwd\+bwd'"),
        ("in_scan_impls", ("torch",), r"`config.in_scan_impls` \(=\('torch',\)\)"),
        ("scan_repeats", 0, r"`config.scan_repeats` \(=0\) must be >= 1"),
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


@pytest.mark.parametrize("module", [_cases, _machine, _memory, _report, _timer])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0
