"""Generic experiment plumbing: config flags, workdir, metrics, checkpoints, plots.

Every `python -m experiments.<script> --config=configs/<name>.py --workdir=DIR`
uses this module and nothing here knows what is being trained. A script is::

    from experiments import runner

    def experiment(args: runner.Args) -> None:
        check_my_config(args.config)            # raise runner.ConfigError
        wd = runner.prepare_workdir(args.workdir, args.config,
                                    overwrite=args.overwrite)  # config.json
        ckpt = wd.checkpoints(save_every=100)
        step, state = ckpt.restore_latest(init_state)  # (0, init_state) if none
        with wd.metrics(resume_step=step) as metrics, runner.progress(
                total, initial=step, quiet=args.quiet) as bar:
            ...                                  # train a chunk
            runner.check_finite(step, loss=loss, checkpoints=ckpt)
            metrics.write(step=step, loss=loss)  # before the checkpoint
            ckpt.save(step, state, loss=loss)    # kept only if not rising
        ckpt.close()
        runner.plot_curves(wd.path / "loss.png", ...)
        wd.write_summary({...})                  # marks the run finished

    if __name__ == "__main__":
        runner.main(experiment)

API:
  - `main(experiment, argv=None)`: parses `--config`, `--workdir`,
    `--overwrite`, `--quiet`, `--allow_optimizer_change`; runs
    `experiment(Args)`; an `ExperimentError` becomes one line on stderr and
    its exit code (config 2, workdir 3, non-finite 4), so do a full disk (5)
    and Ctrl-C (130). `parse_args(argv)` does the parsing alone.
  - `ConfigError`, `require(ok, field, value, must)`, `check_fields(config,
    allowed)`: config checks that name the field, before any computation.
  - `prepare_workdir(path, config, overwrite=, allow_optimizer_change=)` ->
    `Workdir`: marks (`RUN_MARKER`) and locks (`LOCK_FILE`, `fcntl.flock`)
    the directory, writes `config.json`; refuses a directory no run wrote, a
    workdir another run holds, a finished workdir (one with `summary.json`)
    without `--overwrite` (which deletes only `RUN_FILES` and the marker's
    outputs); resumes an unfinished one only with the same config (or other
    optimizer settings, if allowed: recorded in `config_changes.jsonl`).
  - `Workdir.metrics(resume_step)` -> `MetricsWriter` (`metrics.jsonl`, one
    JSON object per line, one `write` each; replaced atomically on resume);
    `read_jsonl(path)` (a torn line is an error).
  - `Workdir.checkpoints(save_every, max_to_keep)` -> `Checkpoints` (orbax):
    restores the newest checkpoint that restores; keeps only states whose
    loss is finite and not rising.
  - `Workdir.write_summary(dict)` -> `summary.json`, written atomically, last.
  - `check_finite(step, checkpoints=, hint=, **values)`: raises
    `NonFiniteError` naming the value and the step.
  - `progress(total, initial=, quiet=)`: a tqdm bar on stderr, shown only
    when the run lasts more than two seconds.
  - `plot_curves`, `plot_heatmaps`, `plot_images`: PNG files (Agg backend).

Scaling out (JAX's own machinery, no home-made collectives):
  - `main` calls `jax.distributed.initialize()` before the experiment runs
    when `config.distributed.initialize` is True or the environment variable
    `JCONV_DISTRIBUTED` is `1` (`initialize_distributed`); then only process 0
    writes the workdir (`Workdir.writer`, `is_main_process()`), and every
    process saves its part of each orbax checkpoint.
  - `check_distributed(config)`, `mesh_sizes(mesh_config)`, `make_mesh(...)`:
    a device mesh from a `{axis name: size}` sub-config, checked by name.
  - `place(tree, mesh, specs)`: host arrays onto the mesh as `NamedSharding`
    arrays (one process or several); `fetch(tree)`: back to NumPy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import math
import os
import pathlib
import shutil
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

CONFIG_JSON = "config.json"
METRICS_JSONL = "metrics.jsonl"
SUMMARY_JSON = "summary.json"
CHECKPOINT_DIR = "checkpoints"
# What a resume with --allow_optimizer_change changed, one JSON line each.
CHANGES_JSONL = "config_changes.jsonl"
# Written into a workdir before anything else, by `prepare_workdir` only: a
# directory without it was not made by a run, and nothing in it is deleted.
# It lists the outputs a run wrote besides `RUN_FILES` (its plots).
RUN_MARKER = ".jconv-run"
# Held with `fcntl.flock` for as long as a run has the workdir open; the OS
# drops the lock when the process ends, however it ends.
LOCK_FILE = ".jconv-run.lock"
# Every file `--overwrite` may delete, in the order it deletes them (a kill
# half-way leaves config.json, so the rest is still read as that run's), plus
# the outputs listed in the marker and the `.tmp` twins of all of them.
RUN_FILES = (SUMMARY_JSON, METRICS_JSONL, CHANGES_JSONL, CHECKPOINT_DIR, CONFIG_JSON)
# Top-level config sub-configs that `--allow_optimizer_change` lets a resumed
# run change.
OPTIMIZER_FIELDS = ("optimizer",)
# Exit codes besides the `ExperimentError`s' (config 2, workdir 3, non-finite 4).
EXIT_DISK_FULL = 5
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
# Set to 1 (or true) to call jax.distributed.initialize() before the run.
DISTRIBUTED_ENV = "JCONV_DISTRIBUTED"
# `config.distributed`: how a run is launched on several processes.
DISTRIBUTED_FIELDS = dict.fromkeys(
    ("initialize", "coordinator_address", "num_processes", "process_id")
)
# Sub-configs that say how a run is launched, not what it computes: saved in
# config.json but not compared when a run resumes (a restarted job may get
# another coordinator address).
LAUNCH_FIELDS = ("distributed",)


# --------------------------------------------------------------------- errors


class ExperimentError(Exception):
    """An error the user can fix; `main` prints it as one line and exits."""

    exit_code = 1


class ConfigError(ExperimentError, ValueError):
    """A bad or unknown config field; raised before any computation."""

    exit_code = 2


class WorkdirError(ExperimentError):
    """The workdir holds a finished run, another config, or foreign files."""

    exit_code = 3


class NonFiniteError(ExperimentError, FloatingPointError):
    """A logged value (the loss, a gradient norm) became NaN or infinite."""

    exit_code = 4


def require(ok: bool, field: str, value: Any, must: str) -> None:
    """Raises `ConfigError("`config.<field>` (=value) must ...")` unless `ok`.

    Example:
      >>> require(0.1 > 0, "optimizer.learning_rate", 0.1, "be positive")
      >>> require(-1 > 0, "optimizer.learning_rate", -1, "be positive")
      Traceback (most recent call last):
      ...
      experiments.runner.ConfigError: `config.optimizer.learning_rate` (=-1) must ...
    """
    if not ok:
        raise ConfigError(f"`config.{field}` (={value!r}) must {must}")


def check_fields(config, allowed: Mapping[str, Any], prefix: str = "") -> None:
    """Refuses config fields that `allowed` does not name.

    Args:
      config: a `ConfigDict` (or mapping).
      allowed: `{name: None}` for a leaf, `{name: {...}}` for a sub-config.
      prefix: dotted path of `config` inside the root config.

    Raises:
      ConfigError: naming the first unknown field and listing the known ones.
    """
    for name, value in config.items():
        path = f"{prefix}{name}"
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(
                f"`config.{path}` is not a known field; known fields here: {known}"
            )
        sub = allowed[name]
        if isinstance(sub, Mapping):
            if not hasattr(value, "items"):
                raise ConfigError(f"`config.{path}` (={value!r}) must be a sub-config")
            check_fields(value, sub, prefix=f"{path}.")


# --------------------------------------------------------------- command line


@dataclasses.dataclass(frozen=True)
class Args:
    """What a script receives: the resolved, locked config and the run flags."""

    config: Any  # ml_collections.ConfigDict
    workdir: pathlib.Path
    overwrite: bool = False
    quiet: bool = False
    allow_optimizer_change: bool = False


_USAGE = (
    "usage: python -m experiments.<script> --config=configs/<name>.py "
    "--workdir=runs/<name> [--config.<field>=<value> ...] [--overwrite] [--quiet] "
    "[--allow_optimizer_change]"
)


def _config_file_arg(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.partition("=")[2]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def parse_args(argv: Sequence[str]) -> Args:
    """Parses `argv` (without the program name) into `Args`.

    `--config=FILE` loads `FILE`'s `get_config()`, locked, then applies
    `--config.a.b=value` overrides; an override of a field the config does not
    have is refused. Raises `ConfigError` for every flag problem.
    """
    from absl import flags
    from ml_collections import config_flags

    argv = ["prog", *argv]
    fv = flags.FlagValues()
    # sys_argv: overrides are found in the argv we parse, not in sys.argv.
    config_flags.DEFINE_config_file(
        "config", None, "config file with get_config()", flag_values=fv,
        lock_config=True, sys_argv=argv,
    )  # fmt: skip
    flags.DEFINE_string("workdir", None, "run directory", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "replace a finished run", flag_values=fv)
    flags.DEFINE_bool("quiet", False, "no progress bar", flag_values=fv)
    flags.DEFINE_bool(
        "allow_optimizer_change",
        False,
        "resume an unfinished run with other optimizer settings (recorded)",
        flag_values=fv,
    )
    try:
        with warnings.catch_warnings():
            # ml_collections loads the file with the deprecated load_module().
            warnings.simplefilter("ignore", DeprecationWarning)
            fv(argv)
    except (AttributeError, KeyError) as e:
        # ml_collections reports an unknown override as
        # AttributeError(KeyError("'name'\nDid you mean ...")).
        inner = e.args[0] if e.args and isinstance(e.args[0], KeyError) else e
        text = str(inner.args[0]) if inner.args else str(inner)
        if "has no attribute 'get_config'" in text:
            raise ConfigError(
                f"--config file {_config_file_arg(argv[1:])!r} has no get_config() "
                "function: a config file defines `def get_config():` returning "
                "an ml_collections.ConfigDict"
            ) from None
        key, _, hint = text.partition("\n")
        key = key.strip("'\"")
        bad = [a.split("=")[0] for a in argv if a.startswith("--config.")]
        bad = [a for a in bad if key in a.split(".")] or [f"config...{key}"]
        raise ConfigError(
            f"`{bad[0].removeprefix('--')}` is not a field of the config "
            f"(unknown fields are refused). {hint}".strip()
        ) from None
    except flags.Error as e:
        raise ConfigError(f"{e}\n{_USAGE}") from None
    if not fv["config"].present:
        raise ConfigError(f"--config is required\n{_USAGE}")
    config_path = fv["config"].config_filename
    if not os.path.isfile(config_path):
        raise ConfigError(f"--config file {config_path!r} does not exist")
    config = fv.config
    if not hasattr(config, "to_dict"):
        raise ConfigError(f"--config file {config_path!r}: get_config() failed")
    if not fv.workdir:
        raise ConfigError(f"--workdir is required\n{_USAGE}")
    return Args(
        config=config,
        workdir=pathlib.Path(fv.workdir),
        overwrite=fv.overwrite,
        quiet=fv.quiet,
        allow_optimizer_change=fv.allow_optimizer_change,
    )


def main(experiment: Callable[[Args], Any], argv: Sequence[str] | None = None) -> None:
    """Parses the command line, runs `experiment(args)`, exits.

    Before the experiment (and before anything touches a JAX device), calls
    `jax.distributed.initialize` if the config or the environment asks for it
    (`initialize_distributed`). Every way a run can stop is one line on
    stderr and an exit code:

    - 2 `ConfigError`, 3 `WorkdirError`, 4 `NonFiniteError`: `error: <message>`;
    - 5 the disk (or quota) is full; 130 Ctrl-C: what happened, and that the
      run resumes with the same command (its checkpoints and metrics are
      kept);
    - 1 anything else, with its traceback (a bug).

    The workdir locks this run took are released before it returns.
    """
    command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--help" in argv or "-h" in argv:
        print(_USAGE)
        sys.exit(0)
    args = None
    held = set(_HELD)
    try:
        args = parse_args(argv)
        initialize_distributed(args.config)
        experiment(args)
    except ExperimentError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print(f"error: interrupted (Ctrl-C). {_resumable(args)}", file=sys.stderr)
        _exit_quietly(EXIT_INTERRUPTED, command_line)
    except Exception as e:
        if not _disk_full(e):
            raise
        print(
            f"error: no space left on device ({_first_line(e)}). {_resumable(args)}",
            file=sys.stderr,
        )
        _exit_quietly(EXIT_DISK_FULL, command_line)
    finally:
        for key in set(_HELD) - held:
            release_workdir(key)


def _exit_quietly(code: int, command_line: bool, timeout: float = 10.0):
    """Exits after the one-line message. An orbax save cut short leaves
    threads, half-made event loops and never-awaited coroutines that only
    print tracebacks as the interpreter shuts down (what they were writing
    is a temporary directory orbax ignores): the threads are let finish,
    and the command line (not an in-process caller) exits with stderr shut.
    """
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if type(thread).__module__.startswith("orbax."):
            thread.join(max(0.0, deadline - time.monotonic()))
    if command_line:
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    sys.exit(code)


def _resumable(args: Args | None) -> str:
    if args is None or not (args.workdir / RUN_MARKER).exists():
        return "Nothing was written."
    return (
        f"What --workdir {str(args.workdir)!r} holds is kept: run the same "
        "command again to resume from its last checkpoint."
    )


def _disk_full(exc: BaseException | None) -> bool:
    """True if `exc`, or an exception it was raised from, says the disk is
    full (orbax and tensorstore wrap the `OSError` or only keep its text)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -------------------------------------------------------------------- workdir


def to_jsonable(value):
    """NumPy/JAX arrays and scalars, tuples, `ConfigDict`s -> plain JSON types."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, pathlib.Path):
        return str(value)
    if hasattr(value, "__array__") and not isinstance(value, str | bytes):
        value = np.asarray(value)
        return value.item() if value.ndim == 0 else value.tolist()
    return value


def _dump(obj) -> str:
    return json.dumps(to_jsonable(obj), sort_keys=False)


def _write_atomic(path: pathlib.Path, text: str) -> None:
    """Writes a temporary twin, then renames it over `path`: a kill at any
    moment leaves the old file or the new one, never a part."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _append_line(fd: int, line: str) -> None:
    """One `write` to a file opened `O_APPEND`: a kill never leaves half a line."""
    data = (line + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _parse_jsonl(path, *, torn_tail_ok: bool = False) -> tuple[list[dict], bool]:
    """`(rows, torn)`: every line must be a JSON object, except, with
    `torn_tail_ok`, an unfinished last line (no newline), then `torn`."""
    path = pathlib.Path(path)
    lines = path.read_text().split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    rows = []
    for number, line in enumerate([*lines, tail], 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) + 1 and torn_tail_ok:
                return rows, True
            raise WorkdirError(
                f"{path}: line {number} is not a whole JSON row ({line[:60]!r}): "
                "the file was damaged (two runs writing it at once, or an edit); "
                "fix or delete that line, then run again"
            ) from None
    return rows, False


def read_jsonl(path) -> list[dict]:
    """The rows of a JSON-lines file; a torn or damaged line is a
    `WorkdirError` naming the file and the line, never skipped."""
    return _parse_jsonl(path)[0]


def _diff(a, b, prefix="") -> list[tuple[str, Any, Any]]:
    """`(dotted field, saved, now)` for every leaf that differs."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [(prefix[:-1], a, b)]


def _show_diff(diffs) -> str:
    return "; ".join(f"config.{f}: {a!r} (saved) vs {b!r} (now)" for f, a, b in diffs)


class MetricsWriter:
    """Appends one JSON object per line to `metrics.jsonl`, one `write` each.

    `rows` holds every row of the run so far, as read back from JSON. With
    `write=False` (a process other than 0 of a multi-process run) nothing is
    read or written and `rows` holds only the rows written since.

    On resume the file is never rewritten in place: the rows up to
    `resume_step` go to a temporary file that replaces it in one rename, so
    a kill at any moment leaves the old history or the new one.
    """

    def __init__(self, path: pathlib.Path, resume_step: int = 0, *, write=True):
        self.path = pathlib.Path(path)
        self._fd = None
        self.rows: list[dict] = []
        if not write:
            return
        # Rows logged after the checkpoint we restart from are dropped: they
        # will be logged again, identically.
        if resume_step and self.path.exists():
            rows, torn = _parse_jsonl(self.path, torn_tail_ok=True)
            self.rows = [r for r in rows if r.get("step", 0) <= resume_step]
            if torn:
                # Only a run's last write can be torn (it died in it), and a row
                # is written before its step's checkpoint: so the torn row comes
                # after `resume_step`, and is logged again.
                print(
                    f"note: {self.path}: dropped a torn last line logged after "
                    f"step {resume_step} (it is logged again)",
                    file=sys.stderr,
                )
        _write_atomic(self.path, "".join(_dump(r) + "\n" for r in self.rows))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def write(self, **row) -> None:
        line = _dump(row)
        self.rows.append(json.loads(line))
        if self._fd is not None:
            _append_line(self._fd, line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclasses.dataclass
class Workdir:
    """A prepared run directory. `resuming` is True for an unfinished run.

    `writer` is False on every process but 0 of a multi-process run: its
    metrics and summary are then not written (checkpoints still are: orbax
    needs every process to save its part).
    """

    path: pathlib.Path
    resuming: bool
    writer: bool = True

    def metrics(self, resume_step: int = 0) -> MetricsWriter:
        return MetricsWriter(self.path / METRICS_JSONL, resume_step, write=self.writer)

    def checkpoints(self, save_every: int, max_to_keep: int = 2) -> Checkpoints:
        return Checkpoints(self.path / CHECKPOINT_DIR, save_every, max_to_keep)

    def write_summary(self, summary: Mapping[str, Any]) -> pathlib.Path:
        """Writes `summary.json` (atomically): from now on the run is finished."""
        path = self.path / SUMMARY_JSON
        if not self.writer:
            return path
        _write_atomic(path, json.dumps(to_jsonable(summary), indent=1) + "\n")
        return path


def prepare_workdir(
    path, config, *, overwrite: bool = False, allow_optimizer_change: bool = False
) -> Workdir:
    """Creates or reopens a run directory, locks it, writes `config.json`.

    With several processes (`jax.distributed`), process 0 does all of the
    below while the others wait for its verdict; they get a `Workdir` with
    `writer=False`, or the same refusal. The workdir must be on a file system
    every process sees (orbax writes each process's part of a checkpoint).

    - not empty and without the `RUN_MARKER` a run writes first: not a run
      directory; `WorkdirError`, and nothing in it is touched, even with
      `overwrite`.
    - locked by a live run (`LOCK_FILE`, `fcntl.flock`): `WorkdirError`
      naming the process. The lock is this process's until it ends (or
      `release_workdir`).
    - missing or empty: created, marked, fresh run.
    - has `summary.json` (finished): `WorkdirError` unless `overwrite`, which
      deletes the run's own files (`RUN_FILES` and the outputs the marker
      lists) and nothing else.
    - has `config.json` but no summary (killed): resumed if the config is the
      same (the launch fields, `LAUNCH_FIELDS`, aside), else `WorkdirError`
      naming the fields that differ (`overwrite` starts afresh). With
      `allow_optimizer_change`, fields under `OPTIMIZER_FIELDS` may differ:
      the change is appended to `config_changes.jsonl` and `config.json`
      becomes the new config.
    - cannot be created or written (under a file, no permission): `WorkdirError`.
    """
    if _process_count() == 1:
        return _prepare_workdir_here(path, config, overwrite, allow_optimizer_change)
    import jax
    from jax.experimental import multihost_utils

    status, error = 0, None
    if jax.process_index() == 0:
        try:
            here = _prepare_workdir_here(
                path, config, overwrite, allow_optimizer_change
            )
            status = 2 if here.resuming else 1
        except WorkdirError as e:
            error = e
    # A collective: every process waits here until process 0 has decided.
    status = int(multihost_utils.broadcast_one_to_all(np.int32(status)))
    if error is not None:
        raise error
    if status == 0:
        raise WorkdirError(
            f"--workdir {str(path)!r} was refused by process 0 (see its error)"
        )
    return Workdir(
        path=pathlib.Path(path),
        resuming=status == 2,
        writer=jax.process_index() == 0,
    )


# The workdirs this process has locked: real path -> the lock file's descriptor.
_HELD: dict[str, int] = {}


def _lock(path: pathlib.Path) -> bool:
    """Takes the workdir's lock (True), or finds it already ours (False)."""
    key = os.path.realpath(path)
    if key in _HELD:
        return False
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
        os.close(fd)
        raise WorkdirError(
            f"--workdir {str(path)!r} is in use by another run "
            f"({holder or 'a process that is starting'}); wait for it to end "
            "or choose another workdir"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _HELD[key] = fd
    return True


def release_workdir(path) -> None:
    """Releases this process's lock on `path` (no-op if it holds none)."""
    fd = _HELD.pop(os.path.realpath(path), None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def _read_marker(path: pathlib.Path) -> dict:
    try:
        info = json.loads((path / RUN_MARKER).read_text())
        outputs = [
            name
            for name in info.get("outputs", [])
            if isinstance(name, str) and name == pathlib.PurePath(name).name
            and name not in ("", ".", "..", RUN_MARKER, LOCK_FILE)
        ]  # fmt: skip
    except (OSError, ValueError, AttributeError):
        outputs = []
    return {"written_by": "experiments.runner", "outputs": outputs}


def _own(path) -> None:
    """Lists `path` in its workdir's marker, before it is written, so that
    `--overwrite` deletes it; only for a workdir this process has locked."""
    path = pathlib.Path(path)
    if os.path.realpath(path.parent) not in _HELD or path.name in RUN_FILES:
        return
    info = _read_marker(path.parent)
    if path.name not in info["outputs"]:
        info["outputs"].append(path.name)
        _write_atomic(path.parent / RUN_MARKER, json.dumps(info, indent=1) + "\n")


def _refuse_foreign(path: pathlib.Path) -> None:
    if not path.is_dir() or (path / RUN_MARKER).exists():
        return
    # Left by a run killed before its marker was in place.
    entries = sorted(set(os.listdir(path)) - {LOCK_FILE, f"{RUN_MARKER}.tmp"})
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise WorkdirError(
            f"--workdir {str(path)!r} is not a run directory: it holds {shown} "
            f"but no {RUN_MARKER}, the file every run writes first. Nothing in "
            "it is deleted, with or without --overwrite: choose a new or empty "
            "directory (a run made before workdirs were marked must be moved "
            "away by hand)"
        )


def _remove_run_files(path: pathlib.Path) -> None:
    """Deletes what a run wrote (`RUN_FILES`, the marker's outputs, their
    temporary twins) and nothing else; the marker and the lock stay."""
    outputs = _read_marker(path)["outputs"]
    names = [*outputs, *RUN_FILES[:-1], *[f"{n}.tmp" for n in (*outputs, *RUN_FILES)]]
    for name in [*names, f"{RUN_MARKER}.tmp", RUN_FILES[-1]]:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.is_symlink() or target.exists():
            target.unlink()
    _write_atomic(path / RUN_MARKER, json.dumps(_read_marker(path) | {"outputs": []}))


def _os_error_message(path: pathlib.Path, e: OSError) -> str:
    name = str(path)
    if e.errno == errno.ENOTDIR:
        parent = next(
            (p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None
        )
        where = f"{str(parent)!r} is a file" if parent else "a parent is a file"
        return f"--workdir {name!r} cannot be created: {where}, not a directory"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"--workdir {name!r} is not writable ({e.strerror}: "
            f"{e.filename or name}); choose a directory you can write to"
        )
    return f"--workdir {name!r}: {e.strerror or e} ({e.filename or name})"


def _prepare_workdir_here(
    path, config, overwrite: bool, allow_optimizer_change: bool = False
) -> Workdir:
    path = pathlib.Path(path)
    resolved = json.loads(_dump(config))
    locked = False
    try:
        if path.exists() and not path.is_dir():
            raise WorkdirError(f"--workdir {str(path)!r} exists and is not a directory")
        _refuse_foreign(path)  # before anything is written into it
        path.mkdir(parents=True, exist_ok=True)
        locked = _lock(path)
        _refuse_foreign(path)  # again, now that no other run can write in it
        if not (path / RUN_MARKER).exists():
            _write_atomic(path / RUN_MARKER, json.dumps(_read_marker(path)) + "\n")
        entries = set(os.listdir(path))
        finished = SUMMARY_JSON in entries
        if overwrite and entries & {*RUN_FILES, *_read_marker(path)["outputs"]}:
            _remove_run_files(path)
            entries = set(os.listdir(path))
        elif finished:
            raise WorkdirError(
                f"--workdir {str(path)!r} holds a finished run ({SUMMARY_JSON}); "
                "pass --overwrite to replace it (only the run's own files are "
                "deleted), or choose another workdir"
            )
        if CONFIG_JSON in entries:
            _check_resume(path, resolved, allow_optimizer_change)
            return Workdir(path=path, resuming=True)
        _write_atomic(path / CONFIG_JSON, json.dumps(resolved, indent=1) + "\n")
        return Workdir(path=path, resuming=False)
    except BaseException as e:
        if locked:
            release_workdir(path)
        if isinstance(e, OSError) and not _disk_full(e):
            raise WorkdirError(_os_error_message(path, e)) from None
        raise


def _check_resume(path: pathlib.Path, resolved: dict, allow_optimizer_change: bool):
    saved = json.loads((path / CONFIG_JSON).read_text())
    diffs = _diff(
        *(
            {k: v for k, v in c.items() if k not in LAUNCH_FIELDS}
            for c in (saved, resolved)
        )
    )
    if not diffs:
        return
    fixed = [d for d in diffs if d[0].split(".")[0] not in OPTIMIZER_FIELDS]
    where = f"--workdir {str(path)!r} holds an unfinished run with another config"
    if fixed:
        also = (
            "; only optimizer settings (config.optimizer.*) may change on resume"
            if allow_optimizer_change
            else ""
        )
        raise WorkdirError(
            f"{where} ({_show_diff(diffs)}){also}; pass --overwrite to start afresh"
        )
    if not allow_optimizer_change:
        raise WorkdirError(
            f"{where} ({_show_diff(diffs)}); pass --allow_optimizer_change to "
            f"resume it with the new optimizer settings (recorded in "
            f"{CHANGES_JSONL}), or --overwrite to start afresh"
        )
    change = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "flag": "--allow_optimizer_change",
        "changed": {f"config.{f}": {"saved": a, "now": b} for f, a, b in diffs},
    }
    # Recorded before config.json changes: a kill in between records it twice.
    fd = os.open(path / CHANGES_JSONL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        _append_line(fd, json.dumps(change))
    finally:
        os.close(fd)
    _write_atomic(path / CONFIG_JSON, json.dumps(resolved, indent=1) + "\n")


# ------------------------------------------------- several devices, processes


def _process_count() -> int:
    # Never the first to touch JAX: a script that has not imported it (the
    # benchmark's parent process) must not start a backend here.
    jax = sys.modules.get("jax")
    if jax is None or not jax.distributed.is_initialized():
        return 1
    return jax.process_count()


def is_main_process() -> bool:
    """True unless this is a process other than 0 of a `jax.distributed` run.

    Only the main process writes files (metrics, summary, plots) and prints.
    """
    if _process_count() == 1:
        return True
    import jax

    return jax.process_index() == 0


_TRUE, _FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


def check_distributed(config) -> None:
    """Checks `config.distributed` (if the config has one), naming fields.

    Fields: `initialize` (bool), `coordinator_address` (`"host:port"` or
    None), `num_processes` (int >= 1 or None), `process_id` (int >= 0 or
    None). None leaves the value to JAX's auto-detection.
    """
    dist = config.get("distributed") if hasattr(config, "get") else None
    if dist is None:
        return
    check_fields(dist, DISTRIBUTED_FIELDS, prefix="distributed.")
    init = dist.get("initialize", False)
    require(isinstance(init, bool), "distributed.initialize", init, "be True or False")
    address = dist.get("coordinator_address")
    require(
        address is None or (isinstance(address, str) and ":" in address),
        "distributed.coordinator_address",
        address,
        "be 'host:port' (process 0's address) or None (auto-detect)",
    )
    num, pid = dist.get("num_processes"), dist.get("process_id")
    for field, value, low in (("num_processes", num, 1), ("process_id", pid, 0)):
        require(
            value is None
            or (
                isinstance(value, int) and not isinstance(value, bool) and value >= low
            ),
            f"distributed.{field}",
            value,
            f"be an int >= {low} or None (auto-detect)",
        )
    if num is not None and pid is not None:
        require(
            pid < num,
            "distributed.process_id",
            pid,
            f"be < distributed.num_processes (={num})",
        )


def initialize_distributed(config=None, environ: Mapping[str, str] | None = None):
    """Calls `jax.distributed.initialize(...)` if the config or environment asks.

    Asked by `config.distributed.initialize = True`, or by the environment
    variable `JCONV_DISTRIBUTED=1` (also `true`, `yes`). The call passes the
    config's `coordinator_address`, `num_processes` and `process_id` that are
    set (not None); JAX finds the others itself (SLURM, Open MPI, Cloud TPU,
    or its variables `JAX_COORDINATOR_ADDRESS`, ...). Must run before anything
    touches a JAX device; `main` calls it right after parsing the flags. Does
    nothing if `jax.distributed` is already initialised.

    Returns:
      The keyword arguments passed to `jax.distributed.initialize`, or None
      if it was not called.

    Raises:
      ConfigError: a bad `config.distributed` field, or a bad value of
        `JCONV_DISTRIBUTED`, named.
    """
    environ = os.environ if environ is None else environ
    check_distributed(config)
    dist = config.get("distributed") if hasattr(config, "get") else None
    flag = environ.get(DISTRIBUTED_ENV, "").strip().lower()
    if flag not in _TRUE + _FALSE:
        raise ConfigError(
            f"environment variable {DISTRIBUTED_ENV} (={environ[DISTRIBUTED_ENV]!r}) "
            "must be 1 (initialise jax.distributed) or 0"
        )
    if not (flag in _TRUE or (dist is not None and dist.get("initialize", False))):
        return None
    kwargs = {
        name: dist.get(name)
        for name in ("coordinator_address", "num_processes", "process_id")
        if dist is not None and dist.get(name) is not None
    }
    import jax

    if jax.distributed.is_initialized():
        return None
    jax.distributed.initialize(**kwargs)
    return kwargs


def check_mesh_sizes(mesh_config, *, field: str = "mesh") -> dict[str, int]:
    """`{axis name: size}` checked without asking for devices: every size an
    int >= 1 or -1 (at most one -1). Raises `ConfigError` naming the field."""
    sizes = dict(mesh_config.items())
    require(sizes, field, sizes, "name at least one axis")
    for axis, size in sizes.items():
        require(
            isinstance(size, int) and not isinstance(size, bool)
            and (size >= 1 or size == -1),
            f"{field}.{axis}",
            size,
            "be an int >= 1, or -1 for the devices the other axes leave",
        )  # fmt: skip
    free = [axis for axis, size in sizes.items() if size == -1]
    require(len(free) <= 1, field, sizes, "have at most one axis of size -1")
    return sizes


def mesh_sizes(
    mesh_config, *, field: str = "mesh", device_count: int | None = None
) -> dict[str, int]:
    """`{axis name: size}` from a mesh sub-config, checked against the devices.

    One size may be -1: the devices the other axes leave. The product of the
    sizes is the number of devices used (the first ones, in `jax.devices()`
    order); it may be fewer than JAX sees in one process, but with several
    processes it must be all of them (every process takes part in each step).

    Args:
      mesh_config: `ConfigDict` or mapping, axis name -> int.
      field: its dotted path in the root config, for messages.
      device_count: the devices to fit (default `jax.device_count()`, which
        starts JAX's backend: call after `initialize_distributed`).

    Raises:
      ConfigError: naming `config.<field>.<axis>` or `config.<field>`.

    Example:
      >>> mesh_sizes({"data": -1, "height": 2}, device_count=8)
      {'data': 4, 'height': 2}
      >>> mesh_sizes({"data": 16}, device_count=8)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      experiments.runner.ConfigError: `config.mesh` (={'data': 16}) must use at most ...
    """
    sizes = check_mesh_sizes(mesh_config, field=field)
    free = [axis for axis, size in sizes.items() if size == -1]
    if device_count is None:
        import jax

        device_count = jax.device_count()
    fixed = math.prod(size for size in sizes.values() if size != -1)
    if free:
        require(
            device_count % fixed == 0,
            f"{field}.{free[0]}",
            -1,
            f"leave a whole number of devices: {device_count} devices are not a "
            f"multiple of the other axes' {fixed}",
        )
        sizes[free[0]] = device_count // fixed
    used = math.prod(sizes.values())
    processes = _process_count()
    if processes > 1:
        require(
            used == device_count,
            field,
            dict(mesh_config.items()),
            f"use all {device_count} devices of the {processes} processes (the "
            f"product of its sizes is {used}); -1 on one axis takes the rest",
        )
    require(
        used <= device_count,
        field,
        dict(mesh_config.items()),
        f"use at most the devices JAX sees ({device_count}; the product of its "
        f"sizes is {used})",
    )
    return sizes


def make_mesh(sizes: Mapping[str, int]):
    """A `jax.sharding.Mesh` over the first `prod(sizes)` devices.

    `sizes` as returned by `mesh_sizes` (no -1). The axes are `Auto`: XLA
    decides how each jitted computation is split, from its inputs' shardings.
    """
    import jax

    count = math.prod(sizes.values())
    return jax.make_mesh(
        tuple(sizes.values()),
        tuple(sizes),
        axis_types=(jax.sharding.AxisType.Auto,) * len(sizes),
        devices=jax.devices()[:count],
    )


def place(tree, mesh, specs):
    """Host arrays onto `mesh`: each leaf as a global `jax.Array` with
    `NamedSharding(mesh, spec)`.

    `specs` is a `PartitionSpec` for every leaf, or a tree of them shaped like
    a prefix of `tree`. Every process must pass the same values: each one
    keeps only the shards of its own devices (`jax.make_array_from_callback`),
    so this works unchanged on one process or several.
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    def put(spec, sub):
        sharding = NamedSharding(mesh, spec)

        def one(leaf):
            host = np.asarray(leaf)
            return jax.make_array_from_callback(
                host.shape, sharding, lambda index: host[index]
            )

        return jax.tree.map(one, sub)

    is_spec = lambda x: isinstance(x, PartitionSpec)
    return jax.tree.map(put, specs, tree, is_leaf=is_spec)


def fetch(tree):
    """Every leaf of `tree` as a NumPy array, wherever its shards are.

    An array split over the devices of several processes is gathered
    (`multihost_utils.process_allgather`, a collective: every process must
    call `fetch` at the same point).
    """
    import jax

    def one(leaf):
        if isinstance(leaf, jax.Array) and not (
            leaf.is_fully_addressable or leaf.is_fully_replicated
        ):
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree.map(one, tree)


# ---------------------------------------------------------------- checkpoints


def _hide_closed_loop_errors() -> None:
    """A restore that fails leaves tensorstore reads behind whose callbacks,
    then or later, find orbax's event loop closed; each would print a
    traceback (an "unraisable" `RuntimeError`) that says nothing the
    restore's own error does not. Hides those, and only those, from the first
    restore on."""
    previous = sys.unraisablehook
    if getattr(previous, "hides_closed_loop_errors", False):
        return

    def hook(unraisable):
        error = unraisable.exc_value
        if not (
            isinstance(error, RuntimeError) and "Event loop is closed" in str(error)
        ):
            previous(unraisable)

    hook.hides_closed_loop_errors = True
    sys.unraisablehook = hook


class Checkpoints:
    """Orbax checkpoints of one pytree, every `save_every` steps.

    Saves are synchronous: a checkpoint reported saved is on disk, so a SIGKILL
    right after loses nothing. Orbax writes to a temporary directory and renames
    it, so a kill during a save leaves the previous checkpoint intact.

    Given the loss (`save(..., loss=)`), only a good state is kept: a step
    whose loss is NaN, infinite or higher than at the previous call is not
    saved (the save waits for the next good step), so after a divergence the
    latest checkpoint is one from before it. `last_loss` is that previous
    loss; set it after a restore. A rise within float32 rounding (`RISE_RTOL`,
    relative) is not a rise: at convergence the loss jitters in its last bits.
    """

    RISE_RTOL = 1e-5

    def __init__(self, directory, save_every: int, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = pathlib.Path(directory).absolute()
        self.save_every = int(save_every)
        self.last_loss: float | None = None
        self._due = False  # a save was skipped for a bad loss
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                enable_async_checkpointing=False,
            ),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore_latest(self, init_state):
        """`(step, state)` from the newest checkpoint that restores, or
        `(0, init_state)` if there is none.

        `init_state` gives the tree structure, shapes and dtypes to restore into.
        A checkpoint that does not restore (a truncated file, a missing
        `_METADATA`) is named on stderr with the reason and, once an older one
        has restored, deleted. If none restores: `WorkdirError` naming the
        directory.
        """
        import jax

        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            return 0, init_state
        abstract = jax.tree.map(self._ocp.utils.to_shape_dtype_struct, init_state)
        skipped = []  # (step, why)
        _hide_closed_loop_errors()
        for step in steps:
            try:
                restored = self._manager.restore(
                    step, args=self._ocp.args.StandardRestore(abstract)
                )
            except Exception as e:  # tensorstore, orbax, tree errors alike
                skipped.append((step, _first_line(e)))
                continue
            for bad, why in skipped:
                if is_main_process():
                    print(
                        f"warning: checkpoint step {bad} in {self.directory} does "
                        f"not restore ({why}); skipped and deleted, resuming from "
                        f"step {step}",
                        file=sys.stderr,
                    )
                self._manager.delete(bad)
            # Orbax gives back plain tuples for NamedTuples: keep init's structure.
            treedef = jax.tree.structure(init_state)
            return step, jax.tree.unflatten(treedef, jax.tree.leaves(restored))
        reasons = "; ".join(f"step {bad}: {why}" for bad, why in skipped)
        raise WorkdirError(
            f"no checkpoint in {self.directory} restores ({reasons}); nothing was "
            "deleted. Pass --overwrite to start the run afresh"
        )

    def save(
        self, step: int, state, *, force: bool = False, loss: float | None = None
    ) -> bool:
        """Saves when `step` is a multiple of `save_every` (or `force`, or a
        save was skipped), unless `loss` is given and is not finite or rose
        since the previous call (a forced save needs only a finite loss)."""
        step = int(step)
        due = force or self._due or step % self.save_every == 0
        if loss is not None:
            loss = float(loss)
            good = math.isfinite(loss) and (
                force
                or self.last_loss is None
                or loss <= self.last_loss * (1 + self.RISE_RTOL)
            )
            self.last_loss = loss
            if due and not good:
                self._due = True
                return False
        if step == self._manager.latest_step() or not due:
            return False
        self._due = False
        return self._manager.save(
            step, args=self._ocp.args.StandardSave(state), force=True
        )

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


# ------------------------------------------------------------------ NaN guard


def check_finite(
    step: int,
    *,
    checkpoints: Checkpoints | None = None,
    hint: str = "try a smaller learning rate (--config.optimizer.learning_rate=...)",
    **values,
) -> None:
    """Raises `NonFiniteError` if any of `values` (scalars) is NaN or infinite.

    Example:
      >>> check_finite(10, loss=0.5)
      >>> check_finite(20, loss=float("nan"), hint="lower it")
      Traceback (most recent call last):
      ...
      experiments.runner.NonFiniteError: `loss` became nan at step 20; lower it
    """
    for name, value in values.items():
        value = float(value)
        if not math.isfinite(value):
            msg = f"`{name}` became {value} at step {step}; {hint}"
            if checkpoints is not None:
                last = checkpoints.latest_step()
                msg += (
                    f". The last good checkpoint (step {last}) is kept in "
                    f"{checkpoints.directory}: to resume from it with another "
                    "optimizer setting, add --allow_optimizer_change"
                    if last is not None
                    else ". No checkpoint with a finite, non-rising loss was "
                    "saved before it"
                )
            raise NonFiniteError(msg)


# ------------------------------------------------------------------- progress


def progress(total: int, *, initial: int = 0, quiet: bool = False, desc: str = ""):
    """A tqdm bar on stderr; appears only if the run lasts over two seconds.

    Use as a context manager; `bar.update(n)` after each chunk of `n` steps.
    """
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=quiet or not is_main_process(),
        delay=2.0,
        desc=desc or None,
        unit="step",
        dynamic_ncols=True,
        file=sys.stderr,
    )


# ---------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    path,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "step",
    ylabel: str = "",
    logy: bool = True,
    logx: bool = False,
    title: str = "",
    styles: Mapping[str, str] | None = None,
) -> pathlib.Path:
    """Line plot of each `series[name]` against `x`, log y-axis by default.

    Non-positive values are dropped from a log axis (a loss of exactly 0).
    `styles` maps a series name to a matplotlib format string (`"o--"`).
    """
    if not is_main_process():
        return pathlib.Path(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    x = np.asarray(x, np.float64)
    styles = styles or {}
    for name, ys in series.items():
        ys = np.asarray(ys, np.float64)
        keep = (
            np.isfinite(ys) & ((ys > 0) if logy else True) & ((x > 0) if logx else True)
        )
        fmt = styles.get(name, ".-" if len(x) < 40 else "-")
        ax.plot(x[keep], ys[keep], fmt, label=name)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    path = pathlib.Path(path)
    _own(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_heatmaps(
    path,
    arrays: Mapping[str, Any],
    *,
    annotate: bool = True,
    fmt: str = "{:.3g}",
    title: str = "",
    share_scale: bool = True,
) -> pathlib.Path:
    """2D arrays side by side as heatmaps, each cell annotated with its value."""
    if not is_main_process():
        return pathlib.Path(path)
    plt = _pyplot()
    mats = {k: np.asarray(v, np.float64) for k, v in arrays.items()}
    n = len(mats)
    rows, cols = np.max([m.shape for m in mats.values()], axis=0)
    # Panels side by side; wide matrices (a multichannel kernel) one above another.
    w, h = max(3.2, 0.4 * cols + 1.2), max(3.0, 0.4 * rows + 0.8)
    stacked = cols > 2 * rows
    grid = (n, 1) if stacked else (1, n)
    size = (w, h * n) if stacked else (w * n, h)
    fig, axes = plt.subplots(*grid, figsize=size, dpi=100, squeeze=False)
    lo = min(m.min() for m in mats.values())
    hi = max(m.max() for m in mats.values())
    for ax, (name, m) in zip(axes.ravel(), mats.items()):
        vmin, vmax = (lo, hi) if share_scale else (m.min(), m.max())
        im = ax.imshow(m, cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
        if annotate and m.size <= 200:
            mid = (vmin + vmax) / 2
            for (i, j), v in np.ndenumerate(m):
                color = "black" if v > mid else "white"
                ax.text(j, i, fmt.format(v), ha="center", va="center",
                        fontsize=7, color=color)  # fmt: skip
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = pathlib.Path(path)
    _own(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_images(path, images: Mapping[str, Any], *, title: str = "") -> pathlib.Path:
    """Images side by side: 2D arrays in grey, `(H, W, 3)` arrays as RGB.

    Each image is scaled to its own range (a filter's output can be negative).
    """
    if not is_main_process():
        return pathlib.Path(path)
    plt = _pyplot()
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), dpi=100, squeeze=False)
    for ax, (name, img) in zip(axes[0], images.items()):
        img = np.asarray(img, np.float64)
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        if img.ndim == 3:
            span = img.max() - img.min()
            ax.imshow((img - img.min()) / (span if span > 0 else 1.0))
        else:
            ax.imshow(img, cmap="gray")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = pathlib.Path(path)
    _own(path)
    fig.savefig(path)
    plt.close(fig)
    return path
