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
            metrics.write(step=step, loss=loss)
            ckpt.save(step, state)
        ckpt.close()
        runner.plot_curves(wd.path / "loss.png", ...)
        wd.write_summary({...})                  # marks the run finished

    if __name__ == "__main__":
        runner.main(experiment)

API:
  - `main(experiment, argv=None)`: parses `--config`, `--workdir`,
    `--overwrite`, `--quiet`; runs `experiment(Args)`; an `ExperimentError`
    becomes one line on stderr and its exit code (config 2, workdir 3,
    non-finite 4). `parse_args(argv)` does the parsing alone.
  - `ConfigError`, `require(ok, field, value, must)`, `check_fields(config,
    allowed)`: config checks that name the field, before any computation.
  - `prepare_workdir(path, config, overwrite=)` -> `Workdir`: writes
    `config.json` first; refuses a finished workdir (one with `summary.json`)
    without `--overwrite`; resumes an unfinished one only with the same config.
  - `Workdir.metrics(resume_step)` -> `MetricsWriter` (`metrics.jsonl`, one
    JSON object per line, flushed per line); `read_jsonl(path)`.
  - `Workdir.checkpoints(save_every, max_to_keep)` -> `Checkpoints` (orbax).
  - `Workdir.write_summary(dict)` -> `summary.json`, written atomically, last.
  - `check_finite(step, checkpoints=, hint=, **values)`: raises
    `NonFiniteError` naming the value and the step.
  - `progress(total, initial=, quiet=)`: a tqdm bar on stderr, shown only
    when the run lasts more than two seconds.
  - `plot_curves`, `plot_heatmaps`, `plot_images`: PNG files (Agg backend).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import shutil
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

CONFIG_JSON = "config.json"
METRICS_JSONL = "metrics.jsonl"
SUMMARY_JSON = "summary.json"
CHECKPOINT_DIR = "checkpoints"


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


_USAGE = (
    "usage: python -m experiments.<script> --config=configs/<name>.py "
    "--workdir=runs/<name> [--config.<field>=<value> ...] [--overwrite] [--quiet]"
)


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
    )


def main(experiment: Callable[[Args], Any], argv: Sequence[str] | None = None) -> None:
    """Parses the command line, runs `experiment(args)`, exits.

    An `ExperimentError` (config, workdir, non-finite loss) prints
    `error: <message>` on stderr and exits with its `exit_code`; anything else
    propagates with its traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--help" in argv or "-h" in argv:
        print(_USAGE)
        sys.exit(0)
    try:
        experiment(parse_args(argv))
    except ExperimentError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_jsonl(path) -> list[dict]:
    """The rows of a JSON-lines file (a torn last line, from a kill, is skipped)."""
    rows = []
    for line in pathlib.Path(path).read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return rows


def _diff(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"config.{prefix[:-1]}: {a!r} (saved) vs {b!r} (now)"]


class MetricsWriter:
    """Appends one JSON object per line to `metrics.jsonl`, flushed per line."""

    def __init__(self, path: pathlib.Path, resume_step: int = 0):
        self.path = pathlib.Path(path)
        # On resume, rows logged after the checkpoint we restart from are
        # dropped: they will be logged again, identically.
        rows = read_jsonl(self.path) if self.path.exists() and resume_step else []
        kept = [r for r in rows if r.get("step", 0) <= resume_step]
        self._file = self.path.open("w")
        for row in kept:
            self._file.write(_dump(row) + "\n")
        self._file.flush()

    def write(self, **row) -> None:
        self._file.write(_dump(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclasses.dataclass
class Workdir:
    """A prepared run directory. `resuming` is True for an unfinished run."""

    path: pathlib.Path
    resuming: bool

    def metrics(self, resume_step: int = 0) -> MetricsWriter:
        return MetricsWriter(self.path / METRICS_JSONL, resume_step)

    def checkpoints(self, save_every: int, max_to_keep: int = 2) -> Checkpoints:
        return Checkpoints(self.path / CHECKPOINT_DIR, save_every, max_to_keep)

    def write_summary(self, summary: Mapping[str, Any]) -> pathlib.Path:
        """Writes `summary.json` (atomically): from now on the run is finished."""
        path = self.path / SUMMARY_JSON
        _write_atomic(path, json.dumps(to_jsonable(summary), indent=1) + "\n")
        return path


def prepare_workdir(path, config, *, overwrite: bool = False) -> Workdir:
    """Creates or reopens a run directory and writes `config.json` in it.

    - missing or empty: created, fresh run.
    - has `summary.json` (finished): `WorkdirError` unless `overwrite`, which
      deletes the old run first.
    - has `config.json` but no summary (killed): resumed if the config is the
      same, else `WorkdirError` naming the fields that differ (`overwrite`
      starts afresh).
    - other files but no `config.json`: `WorkdirError`; never deleted.
    """
    path = pathlib.Path(path)
    resolved = json.loads(_dump(config))
    if path.exists() and not path.is_dir():
        raise WorkdirError(f"--workdir {str(path)!r} exists and is not a directory")
    entries = sorted(p.name for p in path.iterdir()) if path.exists() else []
    if entries and CONFIG_JSON not in entries:
        raise WorkdirError(
            f"--workdir {str(path)!r} is not empty and holds no {CONFIG_JSON}: "
            f"not a run directory ({', '.join(entries[:5])}); choose another"
        )
    finished = SUMMARY_JSON in entries
    if entries and overwrite:
        shutil.rmtree(path)
        entries = []
    elif finished:
        raise WorkdirError(
            f"--workdir {str(path)!r} holds a finished run ({SUMMARY_JSON}); "
            "pass --overwrite to replace it, or choose another workdir"
        )
    if entries:
        saved = json.loads((path / CONFIG_JSON).read_text())
        if saved != resolved:
            diffs = "; ".join(_diff(saved, resolved))
            raise WorkdirError(
                f"--workdir {str(path)!r} holds an unfinished run with another "
                f"config ({diffs}); pass --overwrite to start afresh"
            )
        return Workdir(path=path, resuming=True)
    path.mkdir(parents=True, exist_ok=True)
    _write_atomic(path / CONFIG_JSON, json.dumps(resolved, indent=1) + "\n")
    return Workdir(path=path, resuming=False)


# ---------------------------------------------------------------- checkpoints


class Checkpoints:
    """Orbax checkpoints of one pytree, every `save_every` steps.

    Saves are synchronous: a checkpoint reported saved is on disk, so a SIGKILL
    right after loses nothing. Orbax writes to a temporary directory and renames
    it, so a kill during a save leaves the previous checkpoint intact.
    """

    def __init__(self, directory, save_every: int, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = pathlib.Path(directory).absolute()
        self.save_every = int(save_every)
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
        """`(step, state)` from the latest checkpoint, or `(0, init_state)`.

        `init_state` gives the tree structure, shapes and dtypes to restore into.
        """
        import jax

        step = self._manager.latest_step()
        if step is None:
            return 0, init_state
        abstract = jax.tree.map(self._ocp.utils.to_shape_dtype_struct, init_state)
        restored = self._manager.restore(
            step, args=self._ocp.args.StandardRestore(abstract)
        )
        # Orbax gives back plain tuples for NamedTuples: keep init's structure.
        treedef = jax.tree.structure(init_state)
        return step, jax.tree.unflatten(treedef, jax.tree.leaves(restored))

    def save(self, step: int, state, *, force: bool = False) -> bool:
        """Saves when `step` is a multiple of `save_every` (or `force`)."""
        step = int(step)
        if step == self._manager.latest_step() or not (
            force or step % self.save_every == 0
        ):
            return False
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
                    f"{checkpoints.directory}"
                    if last is not None
                    else ". No checkpoint was saved before it"
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
        disable=quiet,
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
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_images(path, images: Mapping[str, Any], *, title: str = "") -> pathlib.Path:
    """Images side by side: 2D arrays in grey, `(H, W, 3)` arrays as RGB.

    Each image is scaled to its own range (a filter's output can be negative).
    """
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
    fig.savefig(path)
    plt.close(fig)
    return path
