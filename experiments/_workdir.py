"""A run's directory: marked, locked, its config, metrics and summary
written so that no kill at any moment loses them (README, "Reliability")."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import pathlib
import shutil
import socket
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from experiments._checkpoints import Checkpoints
from experiments._devices import process_count
from experiments._errors import WorkdirError, disk_full

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
# Sub-configs that say how a run is launched, not what it computes: saved in
# config.json but not compared when a run resumes (a restarted job may get
# another coordinator address).
LAUNCH_FIELDS = ("distributed",)


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
    if process_count() == 1:
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
HELD: dict[str, int] = {}


def _lock(path: pathlib.Path) -> bool:
    """Takes the workdir's lock (True), or finds it already ours (False)."""
    key = os.path.realpath(path)
    if key in HELD:
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
    HELD[key] = fd
    return True


def release_workdir(path) -> None:
    """Releases this process's lock on `path` (no-op if it holds none)."""
    fd = HELD.pop(os.path.realpath(path), None)
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


def own(path) -> None:
    """Lists `path` in its workdir's marker, before it is written, so that
    `--overwrite` deletes it; only for a workdir this process has locked."""
    path = pathlib.Path(path)
    if os.path.realpath(path.parent) not in HELD or path.name in RUN_FILES:
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
        if isinstance(e, OSError) and not disk_full(e):
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
