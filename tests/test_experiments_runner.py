"""The generic experiment plumbing: flags, workdir policy, metrics, checkpoints."""

import json
import math
import textwrap

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import plots, runner

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
        runner.main(lambda config, workdir, **flags: None, [f"--config={config_file}"])
    assert exc.value.code == runner.ConfigError.exit_code == 2
    assert "error: --workdir is required" in capsys.readouterr().err


def test_check_fields():
    allowed = {"seed": None, "optimizer": {"name": None, "learning_rate": None}}
    runner.check_fields({"seed": 0, "optimizer": {"name": "sgd"}}, allowed)
    with pytest.raises(runner.ConfigError, match=r"`config.optimizer.lr` is not"):
        runner.check_fields({"optimizer": {"lr": 1}}, allowed)
    with pytest.raises(runner.ConfigError, match=r"`config.optimizer` \(=3\)"):
        runner.check_fields({"optimizer": 3}, allowed)


def test_check_fields_against_a_config_file():
    # The schema of an experiment is its config file: a config may have only
    # its fields and, with `complete`, all of them.
    from configs import train_digits

    schema = train_digits.get_config()
    runner.check_fields(train_digits.get_config(), schema, complete=True)
    extra = train_digits.get_config()
    extra.train.steps = 3
    with pytest.raises(runner.ConfigError, match=r"`config.train.steps` is not a"):
        runner.check_fields(extra, schema)
    missing = train_digits.get_config()
    del missing.model["impl"]
    runner.check_fields(missing, schema)
    with pytest.raises(runner.ConfigError, match=r"`config.model.impl` is missing"):
        runner.check_fields(missing, schema, complete=True)


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
    # Finished: refused without --overwrite, replaced with it; a file the run
    # did not write stays.
    wd.write_summary({"x": np.float32(1.5)})
    (path / "extra").write_text("old")
    with pytest.raises(runner.WorkdirError, match=r"finished run.*--overwrite"):
        runner.prepare_workdir(path, config)
    wd = runner.prepare_workdir(path, {"a": 2}, overwrite=True)
    assert not wd.resuming
    assert sorted(p.name for p in path.iterdir()) == [
        runner.RUN_MARKER,
        runner.LOCK_FILE,
        "config.json",
        "extra",
    ]
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
        plots.plot_curves(
            tmp_path / "c.png", [1, 2, 3], {"loss": [1.0, 0.1, 0.0], "err": [3, 2, 1]}
        ),
        plots.plot_heatmaps(
            tmp_path / "h.png", {"true": np.eye(3), "learned": np.ones((3, 3))}
        ),
        plots.plot_images(
            tmp_path / "i.png", {"grey": np.zeros((5, 5)), "rgb": np.ones((5, 5, 3))}
        ),
    ]
    for path in paths:
        assert path.read_bytes()[:4] == png


# ------------------------------------------------------- several processes


@pytest.fixture
def initialize_calls(monkeypatch):
    """Records jax.distributed.initialize calls instead of making them."""
    import jax

    calls = []
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(
        jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs)
    )
    monkeypatch.delenv(runner.DISTRIBUTED_ENV, raising=False)
    return calls


def _distributed(**fields):
    import ml_collections

    dist = {
        "initialize": False,
        "coordinator_address": None,
        "num_processes": None,
        "process_id": None,
    }
    return ml_collections.ConfigDict({"distributed": {**dist, **fields}})


def test_initialize_distributed_from_the_config(initialize_calls):
    config = _distributed(
        initialize=True,
        coordinator_address="10.0.0.1:1234",
        num_processes=4,
        process_id=2,
    )
    kwargs = runner.initialize_distributed(config, environ={})
    expected = {
        "coordinator_address": "10.0.0.1:1234",
        "num_processes": 4,
        "process_id": 2,
    }
    assert initialize_calls == [expected] and kwargs == expected
    # Unset fields are left to JAX's auto-detection (SLURM, Open MPI, TPU).
    runner.initialize_distributed(_distributed(initialize=True), environ={})
    assert initialize_calls[-1] == {}


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_initialize_distributed_from_the_environment(initialize_calls, value):
    environ = {runner.DISTRIBUTED_ENV: value}
    runner.initialize_distributed(_distributed(num_processes=2), environ=environ)
    # A config without a `distributed` sub-config (another experiment) too.
    runner.initialize_distributed({"seed": 0}, environ=environ)
    assert initialize_calls == [{"num_processes": 2}, {}]


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_initialize_distributed_not_asked(initialize_calls, value):
    environ = {runner.DISTRIBUTED_ENV: value}
    assert runner.initialize_distributed(_distributed(), environ=environ) is None
    assert runner.initialize_distributed({"seed": 0}, environ=environ) is None
    assert initialize_calls == []


def test_main_initializes_before_the_experiment(initialize_calls, tmp_path):
    path = tmp_path / "config.py"
    path.write_text(
        CONFIG.replace(
            "    return config",
            "    config.distributed = ml_collections.ConfigDict()\n"
            "    config.distributed.initialize = False\n"
            "    config.distributed.coordinator_address = 'node0:1234'\n"
            "    config.distributed.num_processes = 2\n"
            "    config.distributed.process_id = 0\n"
            "    return config",
        )
    )
    seen = []
    experiment = lambda config, workdir, **flags: seen.append(list(initialize_calls))
    argv = [f"--config={path}", f"--workdir={tmp_path / 'w'}"]
    runner.main(experiment, [*argv, "--config.distributed.process_id=1"])
    assert seen == [[]]  # not asked
    runner.main(
        experiment,
        [
            *argv,
            "--config.distributed.initialize=True",
            "--config.distributed.process_id=1",
        ],
    )
    called = {"coordinator_address": "node0:1234", "num_processes": 2, "process_id": 1}
    assert seen[-1] == [called]


def test_one_process_is_the_writer():
    # Without jax.distributed this process is process 0 of 1.
    assert runner.is_main_process()


def test_mesh_sizes():
    assert runner.mesh_sizes({"data": 1}, device_count=1) == {"data": 1}
    assert runner.mesh_sizes({"data": -1, "h": 2}, device_count=8) == {
        "data": 4,
        "h": 2,
    }
    # Fewer devices than there are is allowed in one process (the first ones).
    assert runner.mesh_sizes({"data": 2}, device_count=8) == {"data": 2}
    with pytest.raises(
        runner.ConfigError,
        match=r"`config.mesh.data` \(=-1\) must leave a whole number of devices: "
        r"8 devices are not a multiple of the other axes' 3",
    ):
        runner.mesh_sizes({"data": -1, "h": 3}, device_count=8)
    with pytest.raises(runner.ConfigError, match=r"`config.m.x` \(=True\) must be"):
        runner.mesh_sizes({"x": True}, field="m", device_count=8)


def test_place_and_fetch_on_one_device():
    from jax.sharding import PartitionSpec as P

    mesh = runner.make_mesh({"data": 1})
    tree = {"a": np.arange(6.0).reshape(2, 3), "b": np.float32(2)}
    placed = runner.place(tree, mesh, {"a": P("data"), "b": P()})
    assert placed["a"].sharding.spec == P("data")
    assert placed["a"].sharding.mesh.axis_names == ("data",)
    fetched = runner.fetch(placed)
    np.testing.assert_array_equal(fetched["a"], tree["a"])
    assert fetched["b"].dtype == np.float32 and fetched["b"] == 2
