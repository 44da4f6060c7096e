"""A run never destroys data or wedges (issue 11): what `--overwrite` deletes,
the workdir lock, corrupt checkpoints, metrics that survive a kill at any
moment, one-line errors with documented exit codes, and the last good
checkpoint after a divergence.

The overwrite, lock, checkpoint and metrics tests run the command line in
real subprocesses and kill them with real signals (SIGKILL, SIGINT)."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from experiments import kernel_learning, runner

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "learn_document_kernel.py"
# 120 plain-SGD steps, far from converged, a checkpoint every 20 (orbax keeps
# the newest 2): a few seconds a run.
ARGS = [
    f"--config={CONFIG}",
    "--config.optimizer.learning_rate=0.02",
    "--config.train.kernel_rtol=0",
    "--config.train.max_steps=120",
    "--config.train.checkpoint_every=20",
    "--quiet",
]

# The command line, with one thing done when the metrics row of step AT has
# been written (before that step's checkpoint): kill -9 itself, Ctrl-C
# itself, Ctrl-C during the next orbax save, hold the workdir until killed,
# or find the disk full (the metrics file's descriptor now points at
# /dev/full: the next write gets ENOSPC from the kernel).
HOOK = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import orbax.checkpoint as ocp
    from experiments import kernel_learning, runner

    action, at = sys.argv[1], int(sys.argv[2])
    # Ctrl-C as in a terminal: a suite started in the background (as CI may
    # be) passes SIGINT on ignored, and Python then installs no handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    write, save = runner.MetricsWriter.write, ocp.CheckpointManager.save

    def hooked_write(self, **row):
        write(self, **row)
        if row["step"] != at:
            return
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "sigint":
            os.kill(os.getpid(), signal.SIGINT)
        elif action == "enospc":
            os.dup2(os.open("/dev/full", os.O_WRONLY), self._fd)
        elif action == "hold":
            open(os.environ["HOLD_READY"], "w").close()
            time.sleep(600)

    def hooked_save(self, step, *args, **kwargs):
        if action == "sigint_in_save" and step == at:
            # Lands inside orbax's save (which takes far longer than 2 ms).
            threading.Timer(0.002, os.kill, (os.getpid(), signal.SIGINT)).start()
        return save(self, step, *args, **kwargs)

    runner.MetricsWriter.write = hooked_write
    ocp.CheckpointManager.save = hooked_save
    sys.argv[1:] = sys.argv[3:]  # then main reads the command line, as a script
    runner.main(kernel_learning.run)
    """
)


def cli(workdir, *extra, hook=None, timeout=300):
    """`python -m experiments.learn_kernel ARGS --workdir=... extra`, or the
    same through HOOK (`hook=(action, step)`); returns the CompletedProcess."""
    head = ["-m", "experiments.learn_kernel"]
    if hook is not None:
        head = ["-c", HOOK, hook[0], str(hook[1])]
    return subprocess.run(
        [sys.executable, *head, *ARGS, f"--workdir={workdir}", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def steps(workdir):
    return [r["step"] for r in runner.read_jsonl(workdir / "metrics.jsonl")]


def rows(workdir):
    """The metrics rows without the wall-clock times."""
    out = runner.read_jsonl(workdir / "metrics.jsonl")
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in out]


def resume(workdir):
    """The same command again, in this process (faster than a subprocess)."""
    runner.main(kernel_learning.run, [*ARGS, f"--workdir={workdir}"])


def numbers(workdir):
    summary = json.loads((workdir / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k != "wall_seconds"}


def shown(stderr: str) -> list[str]:
    """The lines of stderr that are not absl/orbax log records."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(("WARNING:", "INFO:", "I0", "W0"))
    ]


def no_traceback(stderr: str, lines: int = 2) -> list[str]:
    """`shown(stderr)`, checked to be 1 to `lines` lines and no traceback."""
    shown_lines = shown(stderr)
    assert "Traceback" not in stderr, stderr
    assert 1 <= len(shown_lines) <= lines, stderr
    return shown_lines


def run_main(capsys, *argv, config=CONFIG):
    """`runner.main` in this process; returns (exit code, stderr lines)."""
    argv = [f"--config={config}", *argv, "--quiet"]
    with pytest.raises(SystemExit) as exc:
        runner.main(kernel_learning.run, argv)
    return exc.value.code, shown(capsys.readouterr().err)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same run without any kill, in this process: the reference."""
    workdir = tmp_path_factory.mktemp("whole") / "run"
    runner.main(kernel_learning.run, [*ARGS, f"--workdir={workdir}"])
    return workdir


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A run killed with SIGKILL right after logging step 60: checkpoints 20
    and 40, metrics rows 0..60. Tests work on copies."""
    workdir = tmp_path_factory.mktemp("killed") / "run"
    proc = cli(workdir, hook=("kill", 60))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [20, 40]
    assert steps(workdir)[-1] == 60
    return workdir


def copy_of(workdir, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(workdir, target, symlinks=True)
    return target


# ------------------------------------------------- 1. --overwrite deletes ours


def test_overwrite_refuses_a_directory_no_run_wrote(tmp_path, capsys):
    # The reproduction: a project directory with a config.json.
    mine = tmp_path / "mine"
    (mine / "src").mkdir(parents=True)
    (mine / ".git").mkdir()
    (mine / "src" / "app.py").write_text("print('hi')\n")
    (mine / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (mine / "config.json").write_text('{"name":"app"}')
    before = sorted(str(p.relative_to(mine)) for p in mine.rglob("*"))
    proc = cli(mine, "--overwrite")
    assert proc.returncode == runner.WorkdirError.exit_code == 3, proc.stderr
    code, lines = run_main(capsys, f"--workdir={mine}")  # and without it
    assert code == runner.WorkdirError.exit_code
    for line in (*no_traceback(proc.stderr, lines=1), *lines):
        assert f"--workdir {str(mine)!r} is not a run directory" in line
        # Not ours: no advice to pass --overwrite.
        assert "pass --overwrite" not in line
    assert sorted(str(p.relative_to(mine)) for p in mine.rglob("*")) == before
    assert (mine / "config.json").read_text() == '{"name":"app"}'


def test_overwrite_deletes_only_what_the_run_wrote(tmp_path, uninterrupted):
    workdir = copy_of(uninterrupted, tmp_path)
    # Files a person put there: kept, a PNG among them.
    (workdir / "notes.txt").write_text("keep me")
    (workdir / "my_plot.png").write_bytes(b"\x89PNG mine")
    (workdir / "data").mkdir()
    (workdir / "data" / "x.npy").write_bytes(b"x")
    proc = cli(workdir)  # finished: refused, and it says how to replace it
    assert proc.returncode == 3
    assert "holds a finished run (summary.json); pass --overwrite" in proc.stderr
    proc = cli(workdir, "--overwrite", "--config.train.max_steps=40")
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "notes.txt").read_text() == "keep me"
    assert (workdir / "my_plot.png").read_bytes() == b"\x89PNG mine"
    assert (workdir / "data" / "x.npy").read_bytes() == b"x"
    # The old run is gone: its metrics, checkpoints, summary were replaced.
    assert steps(workdir) == [0, 10, 20, 30, 40]
    assert json.loads((workdir / "summary.json").read_text())["steps"] == 40
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["20", "40"]
    # The plots are listed in the marker, so the next --overwrite deletes them.
    plots = json.loads((workdir / ".jconv-run").read_text())["outputs"]
    assert sorted(plots) == sorted(numbers(workdir)["plots"])


# --------------------------------------------------- 2. one run per workdir


def test_second_run_is_refused_and_a_killed_run_leaves_no_lock(tmp_path):
    workdir = tmp_path / "run"
    ready = tmp_path / "ready"
    first = subprocess.Popen(
        [sys.executable, "-c", HOOK, "hold", "60", *ARGS, f"--workdir={workdir}"],
        cwd=ROOT,
        env={**os.environ, "HOLD_READY": str(ready)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = cli(workdir)
        assert second.returncode == runner.WorkdirError.exit_code
        (line,) = no_traceback(second.stderr, lines=1)
        assert f"--workdir {str(workdir)!r} is in use by another run" in line
        assert f"process {first.pid} on " in line
        assert steps(workdir) == [0, 10, 20, 30, 40, 50, 60]  # untouched
    finally:
        first.kill()  # SIGKILL: no cleanup runs, the OS drops the lock
        first.wait()
    assert first.returncode == -signal.SIGKILL
    third = cli(workdir)
    assert third.returncode == 0, third.stderr
    assert steps(workdir) == list(range(0, 121, 10))


def test_a_torn_metrics_line_is_an_error(tmp_path, capsys, killed):
    workdir = copy_of(killed, tmp_path)
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    # What two runs writing at once left: a torn row, then whole rows.
    lines[2] = lines[2][-6:]
    (workdir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(runner.WorkdirError, match=r"metrics.jsonl: line 3 is not a"):
        runner.read_jsonl(workdir / "metrics.jsonl")
    code, lines = run_main(capsys, *ARGS[1:-1], f"--workdir={workdir}")
    assert code == runner.WorkdirError.exit_code
    assert len(lines) == 1 and "metrics.jsonl: line 3 is not a whole JSON" in lines[0]


# ------------------------------------------- 3. a corrupt latest checkpoint


def _truncate(checkpoint: pathlib.Path):
    for f in (checkpoint / "default" / "d").iterdir():
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _drop_metadata(checkpoint: pathlib.Path):
    (checkpoint / "default" / "_METADATA").unlink()


@pytest.mark.parametrize("corrupt", [_truncate, _drop_metadata])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous(
    tmp_path, killed, uninterrupted, corrupt
):
    workdir = copy_of(killed, tmp_path)
    corrupt(workdir / "checkpoints" / "40")
    proc = cli(workdir)
    assert proc.returncode == 0, proc.stderr
    (line,) = no_traceback(proc.stderr, lines=1)
    assert line.startswith(
        f"warning: checkpoint step 40 in {workdir / 'checkpoints'} does not restore ("
    )
    assert line.endswith("skipped and deleted, resuming from step 20"), line
    # From step 20 it ends exactly where the uninterrupted run does.
    assert numbers(workdir) == numbers(uninterrupted)
    assert rows(workdir) == rows(uninterrupted)


def test_no_restorable_checkpoint_is_a_clear_error(tmp_path, killed):
    workdir = copy_of(killed, tmp_path)
    _truncate(workdir / "checkpoints" / "40")
    _drop_metadata(workdir / "checkpoints" / "20")
    proc = cli(workdir)
    assert proc.returncode == runner.WorkdirError.exit_code, proc.stderr
    line = no_traceback(proc.stderr, lines=1)[0]
    assert f"no checkpoint in {workdir / 'checkpoints'} restores (step 40: " in line
    assert "nothing was deleted" in line
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["20", "40"]


# ------------------------------------------ 4. metrics survive any kill


def test_metrics_survive_a_kill_while_a_resume_rewrites_them(tmp_path, killed):
    workdir = copy_of(killed, tmp_path)
    metrics = workdir / "metrics.jsonl"
    rows = runner.read_jsonl(metrics)
    # A long history (the issue lost 200,000 -> 81,085 rows), so that
    # rewriting it takes a while: the resume keeps every row up to its
    # checkpoint (step 40), so none of these may be lost.
    history = rows[:5] * 10_000 + rows
    metrics.write_text("".join(json.dumps(r) + "\n" for r in history))
    kept = len(history) - 2  # rows 50 and 60 come after the checkpoint

    def kill_when(changed):
        """Resumes, and SIGKILLs the run as soon as `changed()` is true."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "experiments.learn_kernel", *ARGS,
             f"--workdir={workdir}"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 240
        while not changed():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.001)
        proc.kill()
        proc.communicate()
        return proc.returncode

    def stat():
        s = metrics.stat()
        return s.st_ino, s.st_size, s.st_mtime_ns

    # First, the moment the file (or a temporary twin) starts to change.
    before = stat()
    tmp = workdir / "metrics.jsonl.tmp"
    code = kill_when(lambda: tmp.exists() or stat() != before)
    assert code == -signal.SIGKILL
    assert len(runner.read_jsonl(metrics)) >= kept
    # Then the moment metrics.jsonl itself changes.
    before = stat()
    assert kill_when(lambda: stat() != before) == -signal.SIGKILL
    after = runner.read_jsonl(metrics)
    assert len(after) >= kept and after[:kept] == history[:kept]
    # And a last resume ends the run with the whole history.
    proc = cli(workdir)
    assert proc.returncode == 0, proc.stderr
    assert steps(workdir) == [r["step"] for r in history[:kept]] + list(
        range(50, 121, 10)
    )


# ----------------------------------------- 6. one line and an exit code


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["--config.optimizer.learning_rate=inf"],
            "`config.optimizer.learning_rate` (=inf) must be finite",
        ),
        (["--config.train.kernel_rtol=inf"], "`config.train.kernel_rtol` (=inf)"),
        (
            [
                "--config.optimizer.schedule=exponential",
                "--config.optimizer.end_factor=0.1",
                "--config.train.max_steps=3000000000",
            ],
            "`config.train.max_steps` (=3000000000) must be at most 2147483647",
        ),
        (
            ["--config.data.image_size=1000000"],
            "`config.data.image_size` (=1000000) is too large: the pairs' images "
            "and targets do not fit in memory",
        ),
    ],
)
def test_bad_values_exit_2_with_one_line_and_no_workdir(
    tmp_path, capsys, overrides, message
):
    workdir = tmp_path / "run"
    code, lines = run_main(capsys, f"--workdir={workdir}", *overrides)
    assert code == runner.ConfigError.exit_code
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert message in lines[0]
    assert not workdir.exists()


def test_a_config_file_without_get_config(tmp_path):
    # A subprocess: ml_collections reloads a config file into the module it
    # loaded before, so in this process an earlier get_config() would linger.
    config = tmp_path / "noget.py"
    config.write_text("X = 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.learn_kernel", f"--config={config}",
         f"--workdir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == runner.ConfigError.exit_code
    assert no_traceback(proc.stderr, lines=1) == [
        f"error: --config file {str(config)!r} has no get_config() function: a "
        "config file defines `def get_config():` returning an "
        "ml_collections.ConfigDict"
    ]


def test_workdir_under_a_file_or_not_writable(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    code, lines = run_main(capsys, f"--workdir={tmp_path / 'a_file' / 'run'}")
    assert code == runner.WorkdirError.exit_code
    assert lines == [
        f"error: --workdir {str(tmp_path / 'a_file' / 'run')!r} cannot be created: "
        f"{str(tmp_path / 'a_file')!r} is a file, not a directory"
    ]
    if os.geteuid() != 0:  # root writes anywhere: read-only sysfs below instead
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        code, lines = run_main(capsys, f"--workdir={locked}")
        assert code == runner.WorkdirError.exit_code
        assert lines[0].startswith(f"error: --workdir {str(locked)!r} is not writable")
    if pathlib.Path("/sys/kernel").is_dir():
        code, lines = run_main(capsys, "--workdir=/sys/kernel/jconv-run")
        assert code == runner.WorkdirError.exit_code
        assert len(lines) == 1
        assert "error: --workdir '/sys/kernel/jconv-run' is not writable" in lines[0]


def _stopped_then_resumed(tmp_path, uninterrupted, hook, code):
    """Runs with `hook`, expects exit `code` with one line on stderr, resumes,
    and checks the run ends as the uninterrupted one did; returns the line."""
    workdir = tmp_path / "run"
    proc = cli(workdir, hook=hook)
    assert proc.returncode == code, proc.stderr
    (line,) = no_traceback(proc.stderr, lines=1)
    resume(workdir)
    assert numbers(workdir) == numbers(uninterrupted)
    assert rows(workdir) == rows(uninterrupted)
    return line


def test_full_disk_is_one_line_and_resumable(tmp_path, uninterrupted):
    line = _stopped_then_resumed(tmp_path, uninterrupted, ("enospc", 60), 5)
    assert line.startswith("error: no space left on device (")
    assert "run the same command again to resume from its last checkpoint" in line


def test_full_disk_reported_by_orbax_is_recognised(tmp_path, capsys):
    # tensorstore keeps only the text of the OSError; orbax re-raises it.
    def experiment(config, workdir, **flags):
        try:
            raise OSError(28, "No space left on device")
        except OSError as e:
            raise ValueError("Error writing ... ocdbt: [OS error 28]") from e

    argv = [f"--config={CONFIG}", f"--workdir={tmp_path}"]
    with pytest.raises(SystemExit) as exc:
        runner.main(experiment, argv)
    assert exc.value.code == 5
    assert "error: no space left on device" in capsys.readouterr().err


@pytest.mark.parametrize("hook", [("sigint", 60), ("sigint_in_save", 40)])
def test_ctrl_c_is_one_line_and_resumable(tmp_path, uninterrupted, hook):
    line = _stopped_then_resumed(tmp_path, uninterrupted, hook, 130)
    assert line.startswith("error: interrupted (Ctrl-C). What --workdir ")
    assert "run the same command again to resume" in line


# -------------------------- 11. the last good checkpoint after a divergence

# Falls for 90 steps while the warm-up is short of the stability limit
# (learning rate ~0.92 for these images), then diverges: the loss passes
# 1e30 before it overflows.
DIVERGES = [
    "--config.data.noise_std=0.5",
    "--config.optimizer.schedule=warmup_cosine",
    "--config.optimizer.learning_rate=1.5",
    "--config.optimizer.warmup_steps=100",
    "--config.train.max_steps=400",
    "--config.train.checkpoint_every=10",
    "--config.train.kernel_rtol=0",
]


def test_divergence_keeps_a_good_checkpoint_and_resumes_with_a_new_rate(
    tmp_path, capsys
):
    workdir = tmp_path / "run"
    code, lines = run_main(capsys, f"--workdir={workdir}", *DIVERGES)
    assert code == runner.NonFiniteError.exit_code
    loss = {r["step"]: r["loss"] for r in runner.read_jsonl(workdir / "metrics.jsonl")}
    assert max(loss.values()) > 1e22  # finite, but a divergence
    kept = max(int(p.name) for p in (workdir / "checkpoints").iterdir())
    assert loss[kept] <= loss[kept - 10] * (1 + 1e-5)  # float32 jitter aside
    assert loss[kept] < 1  # before the divergence
    assert f"The last good checkpoint (step {kept}) is kept in" in lines[-1]
    assert "--allow_optimizer_change" in lines[-1]

    # A smaller learning rate is a config change: refused unless asked for.
    slower = [*DIVERGES, "--config.optimizer.learning_rate=0.3"]
    code, lines = run_main(capsys, f"--workdir={workdir}", *slower)
    assert code == runner.WorkdirError.exit_code
    assert "config.optimizer.learning_rate: 1.5 (saved) vs 0.3 (now)" in lines[0]
    assert "pass --allow_optimizer_change" in lines[0]
    # Another field still is not allowed, even with the flag.
    code, lines = run_main(
        capsys,
        f"--workdir={workdir}",
        *slower,
        "--config.train.max_steps=300",
        "--allow_optimizer_change",
    )
    assert code == runner.WorkdirError.exit_code
    assert "only optimizer settings" in lines[0]

    runner.main(
        kernel_learning.run,
        [f"--config={CONFIG}", f"--workdir={workdir}", "--quiet", *slower,
         "--allow_optimizer_change"],
    )  # fmt: skip
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["steps"] == 400 and summary["final_loss"] < 1
    rows = runner.read_jsonl(workdir / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(0, 401, 10))
    assert all(r["loss"] == loss[r["step"]] for r in rows if r["step"] <= kept)
    (change,) = runner.read_jsonl(workdir / "config_changes.jsonl")
    assert change["changed"] == {
        "config.optimizer.learning_rate": {"saved": 1.5, "now": 0.3}
    }
    assert change["flag"] == "--allow_optimizer_change"
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["optimizer"]["learning_rate"] == 0.3
