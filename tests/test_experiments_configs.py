"""Every config in configs/ run end to end (shrunk where slow), plus the
reliability promises: determinism, resume after SIGKILL, the NaN stop, config
refusals before any computation, and the overwrite policy."""

import json
import pathlib
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from experiments import kernel_data, kernel_learning, runner
from jconv import document

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SUMMARY_KEYS = {
    "true_kernel",
    "learned_kernel",
    "kernel_max_abs_error",
    "final_loss",
    "steps",
    "wall_seconds",
    "converged",
    "lstsq_kernel",
    "lstsq_kernel_max_abs_error",
    "patch_matrix_rank",
}
# Shrunk so that each smoke run takes a few seconds; the unshrunk configs are
# measured in the README.
SHRINK = {
    "document_example": [],
    "learn_document_kernel": [],
    "learn_signal_kernel": [],
    "learn_volume_kernel": [],
    "learn_from_document_image": [],
    "noise_sweep": [
        "--config.sweep.noise_stds=(0.0,0.1)",
        "--config.sweep.num_pairs=(1,3)",
        "--config.data.image_size=8",
        "--config.train.max_steps=40",
    ],
    "real_image_filters": [
        "--config.data.num_pairs=2",
        "--config.data.image_size=16",
        "--config.target.kernels=('sobel_x','gaussian')",
        "--config.train.max_steps=200",
    ],
    "multichannel": [
        "--config.data.num_pairs=2",
        "--config.data.image_size=16",
        "--config.train.max_steps=1000",
    ],
}


def run(name, workdir, *overrides, config=None):
    """Runs a config in this process as the command line would."""
    config = config or CONFIGS / f"{name}.py"
    argv = [f"--config={config}", f"--workdir={workdir}", "--quiet", *overrides]
    runner.main(kernel_learning.run, argv)
    return json.loads((pathlib.Path(workdir) / "summary.json").read_text())


def run_error(capsys, name, workdir, *overrides, config=None):
    """Runs a config that must fail; returns (exit code, stderr)."""
    with pytest.raises(SystemExit) as exc:
        run(name, workdir, *overrides, config=config)
    return exc.value.code, capsys.readouterr().err


def numbers(summary):
    """The summary without what may differ between identical runs."""
    return {k: v for k, v in summary.items() if k not in ("wall_seconds",)}


def rows(workdir):
    out = runner.read_jsonl(pathlib.Path(workdir) / "metrics.jsonl")
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in out]


def check_outputs(workdir, summary):
    workdir = pathlib.Path(workdir)
    names = sorted(p.name for p in workdir.iterdir())
    for name in ("config.json", "summary.json", *summary["plots"]):
        assert name in names
    for png in summary["plots"]:
        assert (workdir / png).read_bytes()[:4] == b"\x89PNG"


def test_every_learn_kernel_config_has_a_smoke_test():
    ours = [
        p.stem
        for p in CONFIGS.glob("*.py")
        if "python -m experiments.learn_kernel" in p.read_text()
    ]
    assert sorted(ours) == sorted(SHRINK)


def test_run_is_called_directly(tmp_path, capsys):
    # What the command line calls, with the flags as keywords: no runner.Args.
    from configs import learn_document_kernel

    config, workdir = learn_document_kernel.get_config(), tmp_path / "run"
    summary = kernel_learning.run(config, workdir, quiet=True)
    assert summary["recovered_to_float32"] and summary["converged"]
    saved = json.loads((workdir / "summary.json").read_text())
    assert numbers(saved) == json.loads(
        json.dumps(numbers(runner.to_jsonable(summary)))
    )
    with pytest.raises(runner.WorkdirError, match=r"finished run.*--overwrite"):
        kernel_learning.run(config, workdir, quiet=True)
    again = kernel_learning.run(config, str(workdir), overwrite=True, quiet=True)
    assert numbers(again).keys() == numbers(summary).keys()
    assert again["steps"] == summary["steps"]
    assert f"plots: {workdir}" in capsys.readouterr().out


def check_learning_run(workdir, summary, out):
    """What every learning run must leave behind and print."""
    check_outputs(workdir, summary)
    assert set(summary) >= SUMMARY_KEYS
    for png in ("loss.png", "kernel_error.png"):
        assert png in summary["plots"]
    history = runner.read_jsonl(workdir / "metrics.jsonl")
    assert history[0]["step"] == 0 and history[-1]["step"] == summary["steps"]
    assert {"step", "loss", "kernel_max_abs_error", "grad_norm", "wall_seconds"} <= (
        set(history[-1])
    )
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]  # the loss fell
    assert f"plots: {workdir}" in out
    if not summary["converged"]:
        return
    # Gradient descent, run to convergence on exact or noisy pairs, lands on
    # the closed-form least-squares solution (float32 vs float64).
    for record in summary["problems"]:
        scale = np.max(np.abs(record["true_kernel"])) + 1e-3
        assert record["learned_minus_lstsq_max_abs"] < 1e-3 * scale, record["name"]


@pytest.mark.parametrize("name", ["real_image_filters", "multichannel"])
def test_smoke(name, tmp_path, capsys):
    summary = run(name, tmp_path / name, *SHRINK[name])
    check_learning_run(tmp_path / name, summary, capsys.readouterr().out)


def test_smoke_learn_document_kernel_is_recovered_to_float32(tmp_path, capsys):
    # What `make run` promises, with the config unshrunk.
    summary = run("learn_document_kernel", tmp_path / "run")
    out = capsys.readouterr().out
    check_learning_run(tmp_path / "run", summary, out)
    assert summary["converged"] and summary["recovered_to_float32"]
    assert summary["kernel_max_abs_error"] <= 8 * np.finfo(np.float32).eps * 10
    np.testing.assert_allclose(summary["learned_kernel"], document.KERNEL, atol=1e-5)
    assert "RECOVERED to float32 precision" in out
    assert summary["patch_matrix_rank"] == 9


# The 1-D and 3-D configs, unshrunk: named kernels, their rank's plots.
RANK_CONFIGS = {
    "learn_signal_kernel": dict(
        rank=1,
        kernels={
            "moving_average": [1 / 3] * 3,
            "first_difference": [0, -1, 1],
            "second_difference": [1, -2, 1],
            "gaussian": [0.25, 0.5, 0.25],
        },
        pairs_plot="signals",
    ),
    "learn_volume_kernel": dict(
        rank=3,
        kernels={
            "laplacian": kernel_data.NAMED_VOLUME_KERNELS["laplacian"],
            "box": np.full((3, 3, 3), 1 / 27),
            "gaussian": kernel_data.NAMED_VOLUME_KERNELS["gaussian"],
        },
        pairs_plot="volumes",
    ),
}


@pytest.mark.parametrize("name", list(RANK_CONFIGS))
def test_smoke_1d_and_3d_kernels_are_recovered_to_float32(name, tmp_path, capsys):
    want = RANK_CONFIGS[name]
    workdir = tmp_path / "run"
    summary = run(name, workdir)
    out = capsys.readouterr().out
    check_learning_run(workdir, summary, out)
    assert summary["spatial_rank"] == want["rank"]
    assert summary["converged"] and summary["recovered_to_float32"]
    assert summary["patch_matrix_rank"] == summary["unknowns"] == 3 ** want["rank"]
    for record in summary["problems"]:
        true = np.asarray(want["kernels"][record["name"]], np.float64)
        np.testing.assert_array_equal(record["true_kernel"], true.astype(np.float32))
        # "Recovered to float32 precision": within 8 float32 epsilons of the
        # largest entry. Gradient descent stops there (the stopping rule); the
        # float64 least-squares solution is as close (its error is the
        # float32 rounding of the targets, ~eps |y| / sqrt(equations)).
        bound = 8 * np.finfo(np.float32).eps * np.max(np.abs(true))
        for key in ("learned_kernel", "lstsq_kernel"):
            assert np.max(np.abs(np.asarray(record[key]) - true)) <= bound, key
        for plot in ("kernel", want["pairs_plot"]):
            assert f"{plot}_{record['name']}.png" in summary["plots"]
    assert out.count("RECOVERED to float32 precision") == len(want["kernels"])
    # Every plot is listed in the workdir's marker (so `--overwrite` deletes
    # it, and nothing else).
    marker = json.loads((workdir / ".jconv-run").read_text())
    assert set(summary["plots"]) <= set(marker["outputs"])


@pytest.mark.parametrize(
    "name, overrides, match",
    [
        (
            "learn_signal_kernel",
            ["--config.target.kernels=('sobel_x',)"],
            r"`config.target.kernels` \(='sobel_x'\) must be one of "
            r"\('moving_average', 'first_difference', 'second_difference', "
            r"'gaussian', 'random'\)",
        ),
        (
            "learn_volume_kernel",
            ["--config.target.kernel_size=5"],
            r"`config.target.kernel_size` \(=5\) must be 3 for the named kernels "
            r"\('laplacian', 'box', 'gaussian'\) \(3x3x3, one channel in and out\)",
        ),
        (
            "learn_signal_kernel",
            ["--config.mesh.height=5"],
            r"`config.mesh.height` \(=5\) must divide the signal length: the "
            r"input's, data.image_size \(=64\), and the output's \(=64, 'causal'",
        ),
        (
            "learn_volume_kernel",
            ["--config.target.kernels=('random',)", "--config.target.kernel_size=9"],
            r"`config.target.kernel_size` \(=9\) must not exceed data.image_size "
            r"\(=8\): the kernel would be larger than the volumes",
        ),
    ],
)
def test_1d_and_3d_configs_are_checked_before_anything(
    tmp_path, capsys, name, overrides, match
):
    code, err = run_error(capsys, name, tmp_path / "run", *overrides)
    assert code == runner.ConfigError.exit_code
    assert re.search(match, err), err
    assert not (tmp_path / "run").exists()


def test_smoke_learn_from_document_image_valid_and_same(tmp_path, capsys):
    valid = run("learn_from_document_image", tmp_path / "valid")
    out = capsys.readouterr().out
    check_learning_run(tmp_path / "valid", valid, out)
    same = run(
        "learn_from_document_image", tmp_path / "same", "--config.model.padding=same"
    )
    check_learning_run(tmp_path / "same", same, capsys.readouterr().out)
    # "valid": 4 equations, 9 unknowns. The learned kernel fits the outputs,
    # equals the minimum-norm solution, and misses the null-space part.
    (rec,) = valid["problems"]
    assert rec["patch_matrix_shape"] == [4, 9]
    assert rec["patch_matrix_rank"] == 4 and rec["null_space_dimension"] == 5
    assert rec["learned_outputs_max_abs_residual"] < 1e-3
    assert rec["learned_minus_lstsq_max_abs"] < 1e-4
    assert rec["kernel_max_abs_error"] > 3
    assert not valid["recovered_to_float32"]
    np.testing.assert_allclose(
        np.asarray(rec["lstsq_kernel"]) + np.asarray(rec["unlearnable_part"]),
        document.KERNEL,
        atol=1e-9,
    )
    assert "determine only 4 of the 9 directions" in out
    # "same": 16 equations of rank 9: recovered.
    (rec,) = same["problems"]
    assert rec["patch_matrix_shape"] == [16, 9] and rec["patch_matrix_rank"] == 9
    assert same["recovered_to_float32"]


def test_smoke_document_example(tmp_path, capsys):
    summary = run("document_example", tmp_path / "doc")
    out = capsys.readouterr().out
    check_outputs(tmp_path / "doc", summary)
    for impl in ("lax", "einsum"):
        assert summary["outputs"][f"{impl}/valid"] == [[56, 76], [175, 302]]
        assert np.shape(summary["outputs"][f"{impl}/same"]) == (4, 4)
    assert summary["valid_matches_claim"] == [[True, False], [True, True]]
    assert summary["impls_max_abs_difference"] == {"valid": 0.0, "same": 0.0}
    assert "Errata:" in out


def test_smoke_noise_sweep_matches_least_squares(tmp_path, capsys):
    summary = run("noise_sweep", tmp_path / "sweep", *SHRINK["noise_sweep"])
    check_learning_run(tmp_path / "sweep", summary, capsys.readouterr().out)
    assert "noise_sweep.png" in summary["plots"]
    table = summary["sweep"]
    assert [(r["noise_std"], r["num_pairs"]) for r in table] == [
        (0.0, 1),
        (0.1, 1),
        (0.0, 3),
        (0.1, 3),
    ]
    for r in table:
        assert r["kernel_max_abs_error"] == pytest.approx(
            r["lstsq_kernel_max_abs_error"], rel=1e-2, abs=1e-5
        )
    assert table[0]["kernel_max_abs_error"] < 1e-5  # no noise: exact
    assert table[1]["kernel_max_abs_error"] > 1e-3  # noise: not


def test_same_config_and_seed_give_identical_numbers(tmp_path):
    # Noisy targets, so that the seed reaches every random draw.
    args = ("--config.data.noise_std=0.1", "--config.train.max_steps=60")
    first = run("learn_document_kernel", tmp_path / "a", *args)
    second = run("learn_document_kernel", tmp_path / "b", *args)
    assert numbers(first) == numbers(second)
    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    other = run("learn_document_kernel", tmp_path / "c", *args, "--config.seed=1")
    assert other["learned_kernel"] != first["learned_kernel"]


def test_nan_stops_with_a_message_and_keeps_no_diverging_checkpoint(tmp_path, capsys):
    workdir = tmp_path / "nan"
    code, err = run_error(
        capsys,
        "learn_document_kernel",
        workdir,
        "--config.optimizer.learning_rate=5",
        "--config.train.checkpoint_every=10",
    )
    assert code == runner.NonFiniteError.exit_code != 0
    found = re.search(
        r"error: `loss` became (inf|nan) at step (\d+); try a smaller "
        r"learning rate, e.g. --config.optimizer.learning_rate=0.5",
        err,
    )
    assert found, err
    # The named step is where the loss first overflows float32: replay the
    # same gradient descent in float64 on the patch matrix. (float32 sums
    # 196 squares per pair before dividing, so it overflows up to ~200x
    # before the mean would.)
    from configs import learn_document_kernel
    from jconv import learn

    setup = kernel_learning.build_setup(learn_document_kernel.get_config())
    x, y = setup.problems.x[0], setup.problems.y[0].reshape(-1)
    a = learn.patch_matrix(x, (3, 3))
    k, losses = np.zeros(9), []
    for _ in range(25):
        r = a @ k - y
        losses.append(np.mean(r**2))
        k = k - 5 * 2 * a.T @ r / len(r)
    step = int(found.group(2))
    assert 10 < step <= 20
    assert losses[step - 1] < np.finfo(np.float32).max < 1e3 * losses[step]
    # The loss rose from the first chunk on (step 10 is far above step 0): a
    # diverging state is never kept as the last good checkpoint (issue 11;
    # tests/test_run_safety.py has a run that falls first, then diverges).
    assert losses[10] > losses[0]
    assert "No checkpoint with a finite, non-rising loss was saved before it" in err
    assert not (workdir / "summary.json").exists()
    assert not any((workdir / "checkpoints").glob("*"))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            ["--config.optimizer.learning_rate=-0.1"],
            r"`config.optimizer.learning_rate` \(=-0.1\) must be a number > 0",
        ),
        (
            ["--config.optimizer.name=adagrad"],
            r"`config.optimizer.name` \(='adagrad'\) must be one of \('sgd'",
        ),
        (["--config.model.impl=cuda"], r"`config.model.impl` \(='cuda'\) must be"),
        (["--config.model.padding=full"], r"`config.model.padding` \(='full'\)"),
        (
            ["--config.target.kernels=('random',)", "--config.target.kernel_size=17"],
            r"`config.target.kernel_size` \(=17\) must not exceed data.image_size "
            r"\(=16\): the kernel would be larger than the images",
        ),
        (
            ["--config.target.kernel_size=5"],
            r"`config.target.kernel_size` \(=5\) must be 3 for the named kernels",
        ),
        (
            ["--config.train.max_steps=105"],
            r"`config.train.max_steps` \(=105\) must be a multiple of train.chunk",
        ),
        (["--config.data.source=lena"], r"`config.data.source` \(='lena'\)"),
        (
            ["--config.optimizer.lr=0.1"],
            r"`config.optimizer.lr` is not a field of the config",
        ),
        (["--config.optimizer.learning_rate=fast"], r"learning_rate=fast"),
        (
            ["--config.mesh.data=3"],
            r"`config.mesh.data` \(=3\) must divide the batch: data.num_pairs "
            r"\(=32\) pairs are split evenly over the data axis",
        ),
        (
            ["--config.mesh.height=4"],
            r"`config.mesh.height` \(=4\) must divide the image height: the "
            r"input's, data.image_size \(=16\), and the output's \(=14, 'valid' "
            r"padding, stride 1\)",
        ),
        (
            ["--config.mesh.data=64", "--config.data.num_pairs=64"],
            r"`config.mesh` \(=\{'data': 64, 'height': 1\}\) must use at most the "
            r"devices JAX sees \(\d+; the product of its sizes is 64\)",
        ),
        (
            ["--config.mesh.data=0"],
            r"`config.mesh.data` \(=0\) must be an int >= 1, or -1 for the devices",
        ),
        (
            ["--config.mesh.data=-1", "--config.mesh.height=-1"],
            r"`config.mesh` \(=\{'data': -1, 'height': -1\}\) must have at most "
            r"one axis of size -1",
        ),
        (
            ["--config.mesh.model=2"],
            r"`config.mesh.model` is not a field of the config",
        ),
        (
            ["--config.distributed.num_processes=0"],
            r"`config.distributed.num_processes` \(=0\) must be an int >= 1 or None",
        ),
        (
            [
                "--config.distributed.num_processes=2",
                "--config.distributed.process_id=2",
            ],
            r"`config.distributed.process_id` \(=2\) must be < "
            r"distributed.num_processes \(=2\)",
        ),
        (
            ["--config.distributed.coordinator_address=node0"],
            r"`config.distributed.coordinator_address` \(='node0'\) must be "
            r"'host:port'",
        ),
    ],
)
def test_bad_config_is_refused_before_anything(tmp_path, capsys, overrides, match):
    workdir = tmp_path / "run"
    code, err = run_error(capsys, "learn_document_kernel", workdir, *overrides)
    assert code == runner.ConfigError.exit_code
    assert err.startswith("error: ")
    assert re.search(match, err), err
    assert not workdir.exists()


def test_noise_sweep_mesh_divides_its_largest_batch(tmp_path, capsys):
    code, err = run_error(
        capsys, "noise_sweep", tmp_path / "run", "--config.mesh.data=3"
    )
    assert code == runner.ConfigError.exit_code
    assert (
        "`config.mesh.data` (=3) must divide the batch: the largest of "
        "sweep.num_pairs (=16) pairs are split evenly over the data axis" in err
    )


def test_bad_distributed_environment_variable_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(runner.DISTRIBUTED_ENV, "maybe")
    code, err = run_error(capsys, "learn_document_kernel", tmp_path / "run")
    assert code == runner.ConfigError.exit_code
    assert (
        "error: environment variable JCONV_DISTRIBUTED (='maybe') must be 1 "
        "(initialise jax.distributed) or 0" in err
    )
    assert not (tmp_path / "run").exists()


def test_resume_ignores_the_launch_fields(tmp_path):
    # A restarted job may get another coordinator: `distributed` is saved in
    # config.json but not compared; the mesh is compared.
    from configs import learn_document_kernel

    config = learn_document_kernel.get_config()
    wd = runner.prepare_workdir(tmp_path / "run", config)
    config.distributed.coordinator_address = "node7:1234"
    assert runner.prepare_workdir(tmp_path / "run", config).resuming
    config.mesh.data = 2
    with pytest.raises(runner.WorkdirError, match=r"config.mesh.data: 1 \(saved\)"):
        runner.prepare_workdir(tmp_path / "run", config)
    saved = json.loads((wd.path / "config.json").read_text())
    assert saved["distributed"]["coordinator_address"] is None


@pytest.mark.parametrize(
    "edit, match",
    [
        ("c.optimizer.lr = 0.1", r"`config.optimizer.lr` is not a known field"),
        ("c.mesh.model = 2", r"`config.mesh.model` is not a known field"),
        (
            "c.distributed.port = 2",
            r"`config.distributed.port` is not a known field; known fields here: "
            r"coordinator_address, initialize, num_processes, process_id",
        ),
        ('del c["mesh"]', r"`config.mesh` is missing"),
        ("c.extra = 1", r"`config.extra` is not a known field"),
        ('del c.train["grad_rtol"]', r"`config.train.grad_rtol` is missing"),
        ("c.experiment = 'train'", r"`config.experiment` \(='train'\) must be"),
    ],
)
def test_config_file_fields_are_checked(tmp_path, capsys, edit, match):
    config = tmp_path / "edited.py"
    config.write_text(
        textwrap.dedent(
            f"""
            from configs import learn_document_kernel

            def get_config():
                c = learn_document_kernel.get_config()
                {edit}
                return c
            """
        )
    )
    code, err = run_error(capsys, None, tmp_path / "run", config=config)
    assert code == runner.ConfigError.exit_code
    assert re.search(match, err), err
    assert not (tmp_path / "run").exists()


def test_finished_workdir_is_not_overwritten(tmp_path, capsys):
    workdir = tmp_path / "doc"
    run("document_example", workdir)
    (workdir / "summary.json").write_text('{"marker": 1}')
    code, err = run_error(capsys, "document_example", workdir)
    assert code == runner.WorkdirError.exit_code
    assert "holds a finished run (summary.json); pass --overwrite" in err
    assert json.loads((workdir / "summary.json").read_text()) == {"marker": 1}
    summary = run("document_example", workdir, "--overwrite")
    assert "marker" not in summary


KILL_AT = """
import os, signal, sys
from experiments import kernel_data, kernel_learning, runner

write = runner.MetricsWriter.write

def write_then_die(self, **row):
    write(self, **row)
    if row["step"] == {step}:
        os.kill(os.getpid(), signal.SIGKILL)

runner.MetricsWriter.write = write_then_die
runner.main(kernel_learning.run, sys.argv[1:])
"""


def test_resume_after_sigkill_ends_like_an_uninterrupted_run(tmp_path):
    args = [
        f"--config={CONFIGS / 'learn_document_kernel.py'}",
        "--config.optimizer.learning_rate=0.02",
        "--config.train.kernel_rtol=0",
        "--config.train.max_steps=120",
        "--config.train.checkpoint_every=40",
        "--quiet",
    ]
    killed = tmp_path / "killed"
    # Killed at step 60: after the checkpoint at 40 and a metrics row at 60.
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT.format(step=60), *args, f"--workdir={killed}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (killed / "summary.json").exists()
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["40"]
    assert [r["step"] for r in rows(killed)][-1] == 60
    # Started again with the same command: resumes from step 40.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.learn_kernel",
            *args,
            f"--workdir={killed}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    resumed = json.loads((killed / "summary.json").read_text())

    whole = tmp_path / "whole"
    argv = [a for a in args if a != "--quiet"] + [f"--workdir={whole}", "--quiet"]
    runner.main(kernel_learning.run, argv)
    uninterrupted = json.loads((whole / "summary.json").read_text())
    assert resumed["steps"] == 120
    assert numbers(resumed) == numbers(uninterrupted)
    assert rows(killed) == rows(whole)
