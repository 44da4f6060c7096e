"""Orbax checkpoints of a run, kept only while the loss is good, and the
check that stops a run whose loss is no longer finite."""

from __future__ import annotations

import logging
import math
import pathlib
import sys

from experiments._devices import is_main_process
from experiments._errors import NonFiniteError, WorkdirError, first_line


class _UnretrievedFutures(logging.Filter):
    """Drops asyncio's "Future (or Task) exception was never retrieved" records: after
    a failed restore, orbax's futures for the other reads of the same damaged
    checkpoint fail too and are collected unread; the restore's own error
    already reports what they say."""

    def filter(self, record):
        message = record.getMessage()
        return not message.startswith(
            ("Future exception was never", "Task exception was never")
        )


def _hide_closed_loop_errors() -> None:
    """A restore that fails leaves tensorstore reads behind whose callbacks,
    then or later, find orbax's event loop closed; each would print a
    traceback (an "unraisable" `RuntimeError`, or asyncio's log line about an
    unretrieved future) that says nothing the restore's own error does not.
    Hides those, and only those, from the first restore on."""
    previous = sys.unraisablehook
    if getattr(previous, "hides_closed_loop_errors", False):
        return
    logging.getLogger("asyncio").addFilter(_UnretrievedFutures())

    def hook(unraisable):
        error = unraisable.exc_value
        if not (
            isinstance(error, RuntimeError) and "Event loop is closed" in str(error)
        ):
            previous(unraisable)

    hook.hides_closed_loop_errors = True
    sys.unraisablehook = hook


class Checkpoints:
    """Orbax checkpoints of one pytree, every `save_every` steps (orbax's
    `CheckpointManager` with `save_interval_steps`).

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
        self.last_loss: float | None = None
        self._due = False  # a save was skipped for a bad loss
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                save_interval_steps=int(save_every),
                max_to_keep=max_to_keep,
                enable_async_checkpointing=False,
                # Only the interval: not also the first step of a fresh run.
                save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(
                    int(save_every)
                ),
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
                skipped.append((step, first_line(e)))
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
        """Saves when orbax's interval says so (or `force`, or a save was
        skipped), unless `loss` is given and is not finite or rose since the
        previous call (a forced save needs only a finite loss)."""
        step = int(step)
        if loss is not None:
            loss = float(loss)
            good = math.isfinite(loss) and (
                force
                or self.last_loss is None
                or loss <= self.last_loss * (1 + self.RISE_RTOL)
            )
            self.last_loss = loss
            if not good:
                self._due |= force or self._manager.should_save(step)
                return False
        if step == self._manager.latest_step():
            return False
        saved = self._manager.save(
            step, args=self._ocp.args.StandardSave(state), force=force or self._due
        )
        self._due = self._due and not saved
        return saved

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
      experiments._errors.NonFiniteError: `loss` became nan at step 20; lower it
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
