"""The generic experiment plumbing: flags, workdir policy, metrics, checkpoints."""

import json
import math
import textwrap

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import runner

CONFIG = textwrap.dedent(
    """
    import ml_collections

    def get_config():
        config = ml_collections.ConfigDict()
        config.seed = 0
        config.optimizer = ml_collections.ConfigDict()
        config.optimizer.name = "sgd"
        config.optimizer.learning_rate = 0.1
        return config
    """
)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.py"
    path.write_text(CONFIG)
    return str(path)


def test_parse_args_overrides(config_file, tmp_path):
    args = runner.parse_args(
        [
            f"--config={config_file}",
            "--config.optimizer.learning_rate=0.05",
            f"--workdir={tmp_path / 'w'}",
            "--quiet",
        ]
    )
    assert args.config.optimizer.learning_rate == 0.05
    assert args.config.optimizer.name == "sgd"
    assert args.quiet and not args.overwrite
    assert args.workdir == tmp_path / "w"
    with pytest.raises(AttributeError):  # locked: no new fields
        args.config.optimizer.momentum = 0.9


@pytest.mark.parametrize(
    "override, match",
    [
        ("--config.optimizer.learing_rate=0.05", r"`config.optimizer.learing_rate`"),
        ("--config.optimzer.learning_rate=0.05", r"`config.optimzer.learning_rate`"),
        ("--config.optimizer.learning_rate=fast", r"learning_rate=fast"),
    ],
)
def test_parse_args_refuses_bad_overrides(config_file, override, match):
    with pytest.raises(runner.ConfigError, match=match):
        runner.parse_args([f"--config={config_file}", override, "--workdir=w"])


def test_parse_args_requires_config_and_workdir(config_file, tmp_path):
    with pytest.raises(runner.ConfigError, match="--workdir is required"):
        runner.parse_args([f"--config={config_file}"])
    with pytest.raises(runner.ConfigError, match="--config is required"):
        runner.parse_args(["--workdir=w"])
    missing = str(tmp_path / "nope.py")
    with pytest.raises(runner.ConfigError, match=r"nope\.py' does not exist"):
        runner.parse_args([f"--config={missing}", "--workdir=w"])


def test_main_prints_error_and_exits(config_file, capsys):
    with pytest.raises(SystemExit) as exc:
        runner.main(lambda args: None, [f"--config={config_file}"])
    assert exc.value.code == runner.ConfigError.exit_code == 2
    assert "error: --workdir is required" in capsys.readouterr().err


def test_check_fields():
    allowed = {"seed": None, "optimizer": {"name": None, "learning_rate": None}}
    runner.check_fields({"seed": 0, "optimizer": {"name": "sgd"}}, allowed)
    with pytest.raises(runner.ConfigError, match=r"`config.optimizer.lr` is not"):
        runner.check_fields({"optimizer": {"lr": 1}}, allowed)
    with pytest.raises(runner.ConfigError, match=r"`config.optimizer` \(=3\)"):
        runner.check_fields({"optimizer": 3}, allowed)


def test_workdir_policy(tmp_path):
    config = {"a": 1, "b": {"c": (1, 2)}}
    path = tmp_path / "run"
    wd = runner.prepare_workdir(path, config)
    assert not wd.resuming
    assert json.loads((path / "config.json").read_text()) == {
        "a": 1,
        "b": {"c": [1, 2]},
    }
    # Killed before the summary: the same config resumes, another is refused.
    assert runner.prepare_workdir(path, config).resuming
    with pytest.raises(runner.WorkdirError, match=r"config.b.c: \[1, 2\] \(saved\)"):
        runner.prepare_workdir(path, {"a": 1, "b": {"c": (1, 3)}})
    # Finished: refused without --overwrite, replaced with it.
    wd.write_summary({"x": np.float32(1.5)})
    (path / "extra").write_text("old")
    with pytest.raises(runner.WorkdirError, match=r"finished run.*--overwrite"):
        runner.prepare_workdir(path, config)
    wd = runner.prepare_workdir(path, {"a": 2}, overwrite=True)
    assert not wd.resuming
    assert sorted(p.name for p in path.iterdir()) == ["config.json"]
    # A directory that is not a run is never deleted.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep")
    with pytest.raises(runner.WorkdirError, match="not a run directory"):
        runner.prepare_workdir(foreign, config, overwrite=True)
    assert (foreign / "precious.txt").exists()


def test_metrics_writer_resume_drops_later_rows(tmp_path):
    wd = runner.prepare_workdir(tmp_path / "run", {})
    with wd.metrics() as m:
        for step in (10, 20, 30):
            m.write(step=step, loss=np.float32(1.0 / step))
    with (tmp_path / "run" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 40, "lo')  # a line torn by a kill
    with wd.metrics(resume_step=20) as m:
        m.write(step=30, loss=0.5)
    rows = runner.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[2]["loss"] == 0.5
    assert rows[0]["loss"] == pytest.approx(0.1)


def test_checkpoints_roundtrip_with_optax_state(tmp_path):
    params = {"kernel": jnp.arange(9.0).reshape(3, 3)}
    opt = optax.adam(0.1)
    state = {"params": params, "opt_state": opt.init(params)}
    ckpt = runner.Checkpoints(tmp_path / "ckpt", save_every=5)
    assert ckpt.restore_latest(state) == (0, state)
    assert not ckpt.save(3, state)  # not a multiple of save_every
    assert ckpt.save(5, state)
    later = {
        "params": {"kernel": params["kernel"] + 1},
        "opt_state": state["opt_state"],
    }
    assert ckpt.save(7, later, force=True)
    ckpt.close()
    ckpt = runner.Checkpoints(tmp_path / "ckpt", save_every=5)
    step, restored = ckpt.restore_latest(state)
    ckpt.close()
    assert step == 7
    np.testing.assert_array_equal(restored["params"]["kernel"], params["kernel"] + 1)
    assert type(restored["opt_state"][0]) is type(state["opt_state"][0])


def test_check_finite(tmp_path):
    runner.check_finite(3, loss=1.0, grad_norm=np.float32(2.0))
    with pytest.raises(runner.NonFiniteError, match="`grad_norm` became inf at step 9"):
        runner.check_finite(9, loss=1.0, grad_norm=math.inf)
    ckpt = runner.Checkpoints(tmp_path / "ckpt", save_every=1)
    ckpt.save(4, {"w": jnp.zeros(2)})
    with pytest.raises(
        runner.NonFiniteError,
        match=r"`loss` became nan at step 5; try a smaller learning rate.*"
        r"checkpoint \(step 4\) is kept",
    ):
        runner.check_finite(5, loss=float("nan"), checkpoints=ckpt)
    ckpt.close()


def test_plots_write_png(tmp_path):
    png = b"\x89PNG"
    paths = [
        runner.plot_curves(
            tmp_path / "c.png", [1, 2, 3], {"loss": [1.0, 0.1, 0.0], "err": [3, 2, 1]}
        ),
        runner.plot_heatmaps(
            tmp_path / "h.png", {"true": np.eye(3), "learned": np.ones((3, 3))}
        ),
        runner.plot_images(
            tmp_path / "i.png", {"grey": np.zeros((5, 5)), "rgb": np.ones((5, 5, 3))}
        ),
    ]
    for path in paths:
        assert path.read_bytes()[:4] == png
