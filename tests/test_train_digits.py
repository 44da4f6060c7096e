"""Smoke test of experiments/train_digits.py: a shrunken configs/train_digits.py
run into a temp dir, through the command line, must lower the loss and leave
a complete workdir; and the scanned epoch steps as the step function does."""

import json
import re

import jax
import numpy as np
import pytest

from configs import train_digits as digits_config
from experiments import runner, train_digits

CONFIG = "configs/train_digits.py"


def _argv(workdir, *overrides):
    return [
        f"--config={CONFIG}",
        f"--workdir={workdir}",
        "--quiet",
        "--config.model.channels=(4, 8)",
        "--config.train.epochs=3",
        "--config.train.checkpoint_every=2",
        *overrides,
    ]


def _exit(capsys, argv):
    """`train_digits` run from the command line `argv`, which must exit: its
    exit code and what it wrote to stderr."""
    with pytest.raises(SystemExit) as exc:
        runner.main(train_digits.run, argv)
    return exc.value.code, capsys.readouterr().err


def test_shrunken_run_lowers_the_loss(tmp_path, capsys, impl):
    workdir = tmp_path / "run"
    runner.main(train_digits.run, _argv(workdir, f"--config.model.impl={impl}"))
    config = json.loads((workdir / "config.json").read_text())
    assert config["model"]["impl"] == impl
    assert config["model"]["channels"] == [4, 8]
    rows = runner.read_jsonl(workdir / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] < 0.7 * rows[0]["train_loss"]
    assert rows[-1]["test_loss"] < rows[0]["test_loss"]
    summary = json.loads((workdir / "summary.json").read_text())
    # Chance is 10%; three epochs of a tiny model are well above it.
    assert summary["test_accuracy"] > 0.5
    assert summary["steps"] == 3 * (summary["n_train"] // 64)
    assert summary["n_train"] + summary["n_test"] == 1797
    assert summary["plots"] == ["curves.png", "accuracy.png", "confusion.png"]
    for name in summary["plots"]:
        assert (workdir / name).read_bytes()[:4] == b"\x89PNG"
    # A finished run is not overwritten without --overwrite.
    code, _ = _exit(capsys, _argv(workdir))
    assert code == runner.WorkdirError.exit_code


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    x = np.arange(10)
    y = -np.arange(10)
    xs, ys = train_digits.epoch_batches(x, y, 3, seed=0, epoch=1)
    assert xs.shape == (3, 3)
    np.testing.assert_array_equal(ys, -xs)
    assert len(set(xs.ravel())) == 9
    again, _ = train_digits.epoch_batches(x, y, 3, seed=0, epoch=1)
    np.testing.assert_array_equal(xs, again)
    other, _ = train_digits.epoch_batches(x, y, 3, seed=0, epoch=2)
    assert not np.array_equal(xs, other)


def test_scanned_epoch_matches_stepping_batch_by_batch(impl):
    config = digits_config.get_config()
    config.model.channels = (4, 8)
    config.model.impl = impl
    x_train, y_train, _, _ = train_digits.load_data(
        config.data.test_fraction, config.seed
    )
    batch = config.train.batch_size
    xs, ys = train_digits.epoch_batches(x_train, y_train, batch, config.seed, 1)
    graphdef, state, _ = train_digits.build(config, steps_per_epoch=len(xs))
    step = train_digits.make_train_step(graphdef)
    stepped, losses, accuracies = state, [], []
    for x, y in zip(xs, ys):
        stepped, loss, accuracy = step(stepped, x, y)
        losses.append(loss)
        accuracies.append(accuracy)
    scanned, scan_losses, scan_accuracies = train_digits.make_train_epoch(step)(
        state, xs, ys
    )
    assert scan_losses.shape == scan_accuracies.shape == (len(xs),)
    # Not bit for bit: XLA:CPU contracts adam's moment update `0.9*mu + 0.1*g`
    # into a fused multiply-add around the other product in the loop body
    # than at top level (for the first layer's kernel), so from the second
    # step on the two runs round differently and drift apart. Measured over
    # this epoch's 21 steps: at most 2 float32 eps (relative) in a loss, 2 eps
    # of the largest parameter in a parameter; allowed: one eps a step.
    eps = len(xs) * np.finfo(np.float32).eps
    np.testing.assert_allclose(scan_losses, np.asarray(losses), rtol=eps)
    # An argmax near a tie may flip: one image of the batch.
    np.testing.assert_allclose(scan_accuracies, np.asarray(accuracies), atol=1 / batch)
    params, scan_params = (jax.tree.leaves(s[0]) for s in (stepped, scanned))
    largest = max(float(np.abs(p).max()) for p in params)
    for p, q in zip(params, scan_params, strict=True):
        np.testing.assert_allclose(q, p, rtol=0, atol=eps * largest)


# (command-line override, what the refusal says)
BAD_OVERRIDES = [
    ("--config.model.impl=cuda", r"`config.model.impl` \(='cuda'\) must be"),
    ("--config.train.epochs=0", r"`config.train.epochs` \(=0\) must be"),
    ("--config.data.test_fraction=1.5", r"`config.data.test_fraction` \(=1.5\)"),
    ("--config.train.batch_size=5000", r"`config.train.batch_size` \(=5000\)"),
    ("--config.model.chanels=(4,)", r"`config.model.chanels` is not a field"),
]


@pytest.mark.parametrize("override, match", BAD_OVERRIDES)
def test_bad_config_is_refused_before_running(tmp_path, capsys, override, match):
    workdir = tmp_path / "run"
    code, err = _exit(capsys, _argv(workdir, override))
    assert code == runner.ConfigError.exit_code
    assert re.search(match, err)
    assert not workdir.exists()
