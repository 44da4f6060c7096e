"""Smoke test of experiments/train_digits.py: a shrunken configs/train_digits.py
run into a temp dir, through the command line, must lower the loss and leave
a complete workdir."""

import json
import re

import numpy as np
import pytest

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


def test_shrunken_run_lowers_the_loss(tmp_path, impl):
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
    with pytest.raises(SystemExit) as exc:
        runner.main(train_digits.run, _argv(workdir))
    assert exc.value.code == runner.WorkdirError.exit_code


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


@pytest.mark.parametrize(
    "override, match",
    [
        ("--config.model.impl=cuda", r"`config.model.impl` \(='cuda'\) must be"),
        ("--config.train.epochs=0", r"`config.train.epochs` \(=0\) must be"),
        ("--config.data.test_fraction=1.5", r"`config.data.test_fraction` \(=1.5\)"),
        ("--config.train.batch_size=5000", r"`config.train.batch_size` \(=5000\)"),
        ("--config.model.chanels=(4,)", r"`config.model.chanels` is not a field"),
    ],
)
def test_bad_config_is_refused_before_running(tmp_path, capsys, override, match):
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        runner.main(train_digits.run, _argv(workdir, override))
    assert exc.value.code == runner.ConfigError.exit_code
    assert re.search(match, capsys.readouterr().err)
    assert not workdir.exists()
