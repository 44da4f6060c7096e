"""Generic experiment plumbing: the command line and what a run uses.

Every `python -m experiments.<script> --config=configs/<name>.py --workdir=DIR`
goes through this module and nothing here knows what is being trained. A
script is shaped like the flax examples (`experiments/learn_kernel.py`)::

    from absl import app
    from ml_collections import config_flags
    from experiments import runner

    config_flags.DEFINE_config_file("config", None, "...", lock_config=True)
    runner.define_flags(config=False)  # --workdir, --overwrite, --quiet, ...

    def main(argv):
        runner.run_experiment(run)  # run(config, workdir, overwrite=..., ...)

    if __name__ == "__main__":
        app.run(main, flags_parser=runner.parse_flags)

and an experiment's `run`, which tests call directly, is::

    def run(config, workdir, *, overwrite=False, quiet=False,
            allow_optimizer_change=False) -> dict:
        check_my_config(config)                 # raise runner.ConfigError
        wd = runner.prepare_workdir(workdir, config, overwrite=overwrite,
                                    allow_optimizer_change=allow_optimizer_change)
        ckpt = wd.checkpoints(save_every=100)
        step, state = ckpt.restore_latest(init_state)  # (0, init_state) if none
        with wd.metrics(resume_step=step) as metrics, runner.progress(
                total, initial=step, quiet=quiet) as bar:
            ...                                  # train a chunk
            runner.check_finite(step, loss=loss, checkpoints=ckpt)
            metrics.write(step=step, loss=loss)  # before the checkpoint
            ckpt.save(step, state, loss=loss)    # kept only if not rising
        ckpt.close()
        plots.plot_curves(wd.path / "loss.png", ...)  # experiments.plots
        wd.write_summary({...})                  # marks the run finished

Here: the command line (`define_flags`, `parse_flags`, `args_from_flags`,
`run_experiment`; `main` and `parse_args` for callers that define no flags)
and `progress`. Re-exported from private modules, one concept each: `_errors`
(`ConfigError` & co., `require`, `check_fields`), `_workdir`
(`prepare_workdir`, `Workdir`, `MetricsWriter`, `read_jsonl`: README,
"Reliability"), `_checkpoints` (`Checkpoints` over orbax's
`CheckpointManager`, `check_finite`) and `_devices` (`initialize_distributed`,
`mesh_sizes`, `make_mesh`, `place`, `fetch`: README, "Scaling out").
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from experiments import _workdir
from experiments._checkpoints import Checkpoints as Checkpoints
from experiments._checkpoints import check_finite as check_finite
from experiments._devices import DISTRIBUTED_ENV as DISTRIBUTED_ENV
from experiments._devices import DISTRIBUTED_FIELDS as DISTRIBUTED_FIELDS
from experiments._devices import check_distributed as check_distributed
from experiments._devices import check_mesh_sizes as check_mesh_sizes
from experiments._devices import fetch as fetch
from experiments._devices import initialize_distributed as initialize_distributed
from experiments._devices import is_main_process as is_main_process
from experiments._devices import make_mesh as make_mesh
from experiments._devices import mesh_sizes as mesh_sizes
from experiments._devices import place as place
from experiments._errors import ConfigError as ConfigError
from experiments._errors import ExperimentError as ExperimentError
from experiments._errors import NonFiniteError as NonFiniteError
from experiments._errors import WorkdirError as WorkdirError
from experiments._errors import check_fields as check_fields
from experiments._errors import disk_full, first_line
from experiments._errors import require as require
from experiments._workdir import CHANGES_JSONL as CHANGES_JSONL
from experiments._workdir import CHECKPOINT_DIR as CHECKPOINT_DIR
from experiments._workdir import CONFIG_JSON as CONFIG_JSON
from experiments._workdir import LAUNCH_FIELDS as LAUNCH_FIELDS
from experiments._workdir import LOCK_FILE as LOCK_FILE
from experiments._workdir import METRICS_JSONL as METRICS_JSONL
from experiments._workdir import OPTIMIZER_FIELDS as OPTIMIZER_FIELDS
from experiments._workdir import RUN_FILES as RUN_FILES
from experiments._workdir import RUN_MARKER as RUN_MARKER
from experiments._workdir import SUMMARY_JSON as SUMMARY_JSON
from experiments._workdir import MetricsWriter as MetricsWriter
from experiments._workdir import Workdir as Workdir
from experiments._workdir import own as own
from experiments._workdir import prepare_workdir as prepare_workdir
from experiments._workdir import read_jsonl as read_jsonl
from experiments._workdir import release_workdir as release_workdir
from experiments._workdir import to_jsonable as to_jsonable

# Exit codes besides the `ExperimentError`s' (config 2, workdir 3, non-finite 4).
EXIT_DISK_FULL = 5
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


# --------------------------------------------------------------- command line


@dataclasses.dataclass(frozen=True)
class Args:
    """The command line: the resolved, locked config and the flags, which
    `run_experiment` passes to an experiment's `run(config, workdir, ...)`."""

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


def define_flags(
    flag_values=None, sys_argv: Sequence[str] | None = None, *, config: bool = True
):
    """Defines a script's flags on `flag_values` (absl's `FLAGS` by default).

    `--config=FILE` is `FILE`'s `get_config()`, locked, with `--config.a.b=v`
    overrides read from `sys_argv` (default `sys.argv`); `config=False` leaves
    it to the script. `--workdir`, `--overwrite`, `--quiet`,
    `--allow_optimizer_change` are `Args`' fields.
    """
    from absl import flags
    from ml_collections import config_flags

    fv = flags.FLAGS if flag_values is None else flag_values
    if config:
        config_flags.DEFINE_config_file(
            "config", None, "config file with get_config()", flag_values=fv,
            lock_config=True, sys_argv=sys_argv,
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
    return fv


def _parse(argv: Sequence[str], fv) -> list[str]:
    """`fv(argv)` (`argv` with the program name); every flag problem is a
    `ConfigError` naming the flag or the config field."""
    from absl import flags

    if "--help" in argv[1:] or "-h" in argv[1:]:
        print(_USAGE)
        sys.exit(0)
    try:
        with warnings.catch_warnings():
            # ml_collections loads the file with the deprecated load_module().
            warnings.simplefilter("ignore", DeprecationWarning)
            return fv(argv)
    except (AttributeError, KeyError) as e:
        # ml_collections reports an unknown override as
        # AttributeError(KeyError("'name'\nDid you mean ...")).
        inner = e.args[0] if e.args and isinstance(e.args[0], KeyError) else e
        text = str(inner.args[0]) if inner.args else str(inner)
        if "has no attribute 'get_config'" in text:
            file = next(
                (a.partition("=")[2] for a in argv if a.startswith("--config=")), None
            )
            raise ConfigError(
                f"--config file {file!r} has no get_config() function: a config "
                "file defines `def get_config():` returning an "
                "ml_collections.ConfigDict"
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


def parse_flags(argv: Sequence[str], flag_values=None) -> list[str]:
    """The `flags_parser` of a script's `app.run`: parses `flag_values`
    (absl's `FLAGS` by default); a bad flag is one line on stderr and exit 2."""
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    try:
        rest = _parse(argv, fv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    # app.run would raise absl's logging to INFO (orbax's chatter).
    if "verbosity" in fv and fv["verbosity"].using_default_value:
        fv["verbosity"].using_default_value = False
    return rest


def args_from_flags(fv=None) -> Args:
    """`Args` from parsed flags; `ConfigError` if `--config` or `--workdir`
    is missing or the config file gives no config."""
    from absl import flags

    fv = flags.FLAGS if fv is None else fv
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


def parse_args(argv: Sequence[str]) -> Args:
    """`Args` from `argv` (without the program name), on flags of its own."""
    from absl import flags

    argv = ["prog", *argv]
    fv = define_flags(flags.FlagValues(), sys_argv=argv)
    _parse(argv, fv)
    return args_from_flags(fv)


def run_experiment(experiment: Callable[..., Any], fv=None, *, command_line=True):
    """What a script's `main(argv)` does: runs `experiment(config, workdir,
    overwrite=..., quiet=..., allow_optimizer_change=...)` on the flags of `fv`
    (`args_from_flags`) and exits.

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
    args = None
    held = set(_workdir.HELD)
    try:
        args = args_from_flags(fv)
        initialize_distributed(args.config)
        experiment(
            args.config,
            args.workdir,
            overwrite=args.overwrite,
            quiet=args.quiet,
            allow_optimizer_change=args.allow_optimizer_change,
        )
    except ExperimentError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print(f"error: interrupted (Ctrl-C). {_resumable(args)}", file=sys.stderr)
        _exit_quietly(EXIT_INTERRUPTED, command_line)
    except Exception as e:
        if not disk_full(e):
            raise
        print(
            f"error: no space left on device ({first_line(e)}). {_resumable(args)}",
            file=sys.stderr,
        )
        _exit_quietly(EXIT_DISK_FULL, command_line)
    finally:
        for key in set(_workdir.HELD) - held:
            release_workdir(key)


def main(experiment: Callable[..., Any], argv: Sequence[str] | None = None) -> None:
    """`experiment` as a script, for callers that define no flags: with
    `argv` (without the program name), in this process on flags of its own
    (tests, the benchmark's workers); without, as `app.run` on the command line.
    """
    from absl import app, flags

    if argv is None:
        define_flags()
        app.run(lambda _: run_experiment(experiment), flags_parser=parse_flags)
        return
    argv = ["prog", *argv]
    fv = define_flags(flags.FlagValues(), sys_argv=argv)
    parse_flags(argv, fv)
    run_experiment(experiment, fv, command_line=False)


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
