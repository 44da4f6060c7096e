"""The scaling measurement (experiments/scaling.py, configs/scaling.py): one
subprocess per device count, each really on that many devices, and the
throughput arithmetic checked from the raw timings."""

import json
import pathlib
import re

import numpy as np
import pytest

from experiments import runner, scaling

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Shrunk: two device counts, tiny problem, two timed calls each.
SHRINK = [
    "--config.device_counts=(1,2)",
    "--config.batch=4",
    "--config.image_size=8",
    "--config.channels=1",
    "--config.channels_out=1",
    "--config.steps=2",
    "--config.repeats=2",
]


def test_smoke_scaling_config(tmp_path, capsys):
    workdir = tmp_path / "scaling"
    argv = [f"--config={ROOT / 'configs' / 'scaling.py'}", f"--workdir={workdir}"]
    runner.main(scaling.run, [*argv, *SHRINK, "--quiet"])
    out = capsys.readouterr().out
    summary = json.loads((workdir / "summary.json").read_text())
    rows = summary["rows"]
    assert [r["devices"] for r in rows] == [1, 2]
    # Weak scaling: 4 pairs per device, spread over exactly that many devices.
    assert [r["batch"] for r in rows] == [4, 8]
    assert [r["placed_on"] for r in rows] == [1, 2]
    for r in rows:
        assert len(r["repeats_seconds"]) == 2
        median = float(np.median(r["repeats_seconds"]))
        assert r["images_per_second"] == pytest.approx(r["batch"] * 2 / median, 1e-3)
        assert r["seconds_per_step"] == pytest.approx(median / 2, 1e-3)
        assert np.isfinite(r["final_loss"])
    assert rows[0]["speedup"] == 1 and rows[0]["efficiency"] == 1
    ratio = rows[1]["images_per_second"] / rows[0]["images_per_second"]
    assert rows[1]["speedup"] == pytest.approx(ratio)
    assert rows[1]["efficiency"] == pytest.approx(ratio / 2)
    assert [r["devices"] for r in runner.read_jsonl(workdir / "metrics.jsonl")] == [
        1,
        2,
    ]
    assert (workdir / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert (workdir / "scaling.md").read_text().strip() == scaling.table(rows)
    assert scaling.table(rows) in out
    assert summary["machine_before"]["cpu_count"] >= 1


@pytest.mark.parametrize(
    "override, match",
    [
        ("--config.device_counts=(2,1)", r"`config.device_counts` \(=\(2, 1\)\)"),
        ("--config.mode=linear", r"`config.mode` \(='linear'\) must be one of"),
        (
            "--config.mode=strong",
            r"`config.batch` \(=32\) must be divisible by every device count in "
            r"mode 'strong'",
        ),
        ("--config.platform=tpu", r"`config.platform` \(='tpu'\)"),
        ("--config.repeats=0", r"`config.repeats` \(=0\) must be an int >= 1"),
    ],
)
def test_bad_scaling_config_is_refused(tmp_path, capsys, override, match):
    argv = [
        f"--config={ROOT / 'configs' / 'scaling.py'}",
        f"--workdir={tmp_path / 'w'}",
    ]
    extra = ["--config.device_counts=(1,2,3)"] if "strong" in override else []
    with pytest.raises(SystemExit) as exc:
        runner.main(scaling.run, [*argv, *extra, override])
    assert exc.value.code == runner.ConfigError.exit_code
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "w").exists()


def test_measure_scaling_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"`mode` \(='linear'\) must be one of"):
        scaling.measure_scaling((1,), mode="linear")
    with pytest.raises(TypeError, match=r"unknown keywords \['image'\]"):
        scaling.measure_scaling((1,), image=8)


def test_scaling_config_is_the_library_default():
    # configs/scaling.py documents the fields; measure_scaling's defaults are
    # the same numbers, so a caller (the benchmark) measures the same thing.
    from configs import scaling as scaling_config

    assert scaling_config.get_config().to_dict() == scaling.DEFAULTS
