"""Trains a small CNN of `jconv.nnx.Conv2D` layers on scikit-learn's digits.

    python -m experiments.train_digits --config=configs/train_digits.py \
        --workdir=runs/train_digits

Writes, in the workdir (see `experiments.runner`): `config.json`,
`metrics.jsonl` (one row per evaluation: epoch, step, train loss and
accuracy, test loss and accuracy, elapsed seconds), orbax checkpoints (a
killed run resumes), `curves.png` (losses), `accuracy.png`, `confusion.png`
(test confusion matrix) and `summary.json`.

The model, the train step, the jitted epoch (one `lax.scan` of the step over
the epoch's batches) and the evaluation are plain functions here, used by the
tests; the layers are the library's.
"""

from __future__ import annotations

import importlib
import math
import os
import time

import jax
import numpy as np
import optax
import sklearn.metrics
from flax import nnx

import jconv.nnx as jnnx
from experiments import plots, runner

NUM_CLASSES = 10
# The schema: a config has only the fields of this config file.
SCHEMA = "configs.train_digits"
PRECISIONS = (None, "default", "high", "highest")


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def check_config(config) -> None:
    """Refuses unknown or bad fields, naming them, before anything runs.

    The convolutions' own arguments (`impl`, `kernel_size`, `channels`) are
    checked again by the layers themselves when the model is built.
    """
    runner.check_fields(config, importlib.import_module(SCHEMA).get_config())
    req = runner.require
    req(
        _is_int(config.seed) and config.seed >= 0, "seed", config.seed, "be an int >= 0"
    )
    frac = config.data.test_fraction
    req(0 < frac < 1, "data.test_fraction", frac, "be in (0, 1)")
    channels = tuple(config.model.channels)
    req(
        channels and all(_is_int(c) and c >= 1 for c in channels),
        "model.channels",
        channels,
        "be a non-empty tuple of ints >= 1",
    )
    k = config.model.kernel_size
    req(_is_int(k) and k >= 1, "model.kernel_size", k, "be an int >= 1")
    impl = config.model.impl
    req(impl in ("lax", "einsum"), "model.impl", impl, "be 'lax' or 'einsum'")
    p = config.model.precision
    req(p in PRECISIONS, "model.precision", p, f"be one of {PRECISIONS}")
    lr, wd = config.optimizer.learning_rate, config.optimizer.weight_decay
    req(lr > 0, "optimizer.learning_rate", lr, "be positive")
    req(math.isfinite(lr), "optimizer.learning_rate", lr, "be finite")
    req(wd >= 0, "optimizer.weight_decay", wd, "be >= 0")
    for name in ("epochs", "batch_size", "eval_every", "checkpoint_every"):
        v = config.train[name]
        req(_is_int(v) and v >= 1, f"train.{name}", v, "be an int >= 1")


# ----------------------------------------------------------------------- data


def load_data(test_fraction: float, seed: int):
    """`(x_train, y_train, x_test, y_test)`: images `(N, 8, 8, 1)` in [0, 1]
    (the 17 grey levels / 16), labels int32, split stratified by digit."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return x_train, y_train, x_test, y_test


# ---------------------------------------------------------------------- model


class DigitsCNN(nnx.Module):
    """ "Same" convolutions with ReLU (stride 1, then 2, 2, ...: 8x8 -> 8x8 ->
    4x4 -> ...), flattened, one linear layer to the 10 logits."""

    def __init__(self, channels, kernel_size, *, impl, precision, rngs):
        c_in, size = 1, 8
        self.convs = nnx.List()
        for i, c_out in enumerate(channels):
            self.convs.append(
                jnnx.Conv2D(
                    c_in,
                    c_out,
                    kernel_size,
                    strides=1 if i == 0 else 2,
                    padding="same",
                    impl=impl,
                    precision=precision,
                    rngs=rngs,
                )
            )
            c_in = c_out
            size = size if i == 0 else -(-size // 2)
        self.head = nnx.Linear(size * size * c_in, NUM_CLASSES, rngs=rngs)

    def __call__(self, x_nhwc):
        h = x_nhwc
        for conv in self.convs:
            h = jax.nn.relu(conv(h))
        return self.head(h.reshape(h.shape[0], -1))


def loss_fn(model, x, y):
    logits = model(x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, logits


def make_train_step(graphdef):
    """A jitted step: `(state, x, y) -> (state, loss, accuracy)` on one batch."""

    @jax.jit
    def step(state, x, y):
        model, optimizer = nnx.merge(graphdef, state)
        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, y)
        optimizer.update(model, grads)
        accuracy = (logits.argmax(-1) == y).mean()
        return nnx.state((model, optimizer)), loss, accuracy

    return step


def make_train_epoch(step):
    """A jitted `(state, xs, ys) -> (state, losses, accuracies)`: `step` on
    each batch of `xs`, `ys` (`(steps, batch, ...)`) in turn, as one
    `lax.scan` with the state as its carry; the per-step losses and
    accuracies are NumPy arrays `(steps,)`.

    One call an epoch, not one a step: jconv computes its derivatives with
    convolutions in XLA's canonical CPU layout, so a scanned step runs as
    fast as a top-level one (on XLA:CPU, a convolution gradient in a loop
    body used to run many times slower, jax-ml/jax#12868;
    tests/test_loop_layout.py). The numbers are those of calling `step`
    batch by batch up to float32 rounding, not bit for bit: XLA compiles the
    loop body on its own, and may contract another product of adam's update
    into a fused multiply-add there.
    """

    @jax.jit
    def scan_epoch(state, xs, ys):
        def body(state, batch):
            state, loss, accuracy = step(state, *batch)
            return state, (loss, accuracy)

        return jax.lax.scan(body, state, (xs, ys))

    def train_epoch(state, xs, ys):
        state, (losses, accuracies) = scan_epoch(state, xs, ys)
        return state, np.asarray(losses), np.asarray(accuracies)

    return train_epoch


def make_evaluate(graphdef):
    """A jitted `(state, x, y) -> (mean loss, accuracy, predictions)`."""

    @jax.jit
    def evaluate(state, x, y):
        model, _ = nnx.merge(graphdef, state)
        loss, logits = loss_fn(model, x, y)
        predictions = logits.argmax(-1)
        return loss, (predictions == y).mean(), predictions

    return evaluate


def build(config, steps_per_epoch: int):
    """`(graphdef, state, number of parameters)` of the model and its
    optimizer (adamw, cosine decay)."""
    model = DigitsCNN(
        tuple(config.model.channels),
        config.model.kernel_size,
        impl=config.model.impl,
        precision=config.model.precision,
        rngs=nnx.Rngs(config.seed),
    )
    schedule = optax.cosine_decay_schedule(
        config.optimizer.learning_rate, config.train.epochs * steps_per_epoch
    )
    tx = optax.adamw(schedule, weight_decay=config.optimizer.weight_decay)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    num_params = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    return (*nnx.split((model, optimizer)), num_params)


def epoch_batches(x, y, batch_size: int, seed: int, epoch: int):
    """The epoch's shuffled batches `(steps, batch, ...)`, the incomplete last
    one dropped; a function of `(seed, epoch)` only, so a resumed run sees
    the same batches."""
    order = np.random.default_rng((seed, epoch)).permutation(len(x))
    steps = len(x) // batch_size
    order = order[: steps * batch_size].reshape(steps, batch_size)
    return x[order], y[order]


# ------------------------------------------------------------------------ run


def run(
    config, workdir, *, overwrite=False, quiet=False, allow_optimizer_change=False
) -> dict:
    """Trains, logs, checkpoints, plots into `workdir`; returns the summary.

    The keywords are the command line's flags (`experiments.runner`).
    """
    check_config(config)
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = load_data(config.data.test_fraction, config.seed)
    train = config.train
    steps_per_epoch = len(x_train) // train.batch_size
    runner.require(
        steps_per_epoch >= 1,
        "train.batch_size",
        train.batch_size,
        f"be at most the {len(x_train)} training images",
    )
    wd = runner.prepare_workdir(
        workdir,
        config,
        overwrite=overwrite,
        allow_optimizer_change=allow_optimizer_change,
    )

    graphdef, state, num_params = build(config, steps_per_epoch)
    train_epoch = make_train_epoch(make_train_step(graphdef))
    evaluate = make_evaluate(graphdef)
    ckpt = wd.checkpoints(save_every=train.checkpoint_every * steps_per_epoch)
    step, state = ckpt.restore_latest(state)
    first_epoch = step // steps_per_epoch

    with (
        wd.metrics(resume_step=step) as metrics,
        runner.progress(
            train.epochs,
            initial=first_epoch,
            quiet=quiet,
            desc=f"digits ({config.model.impl})",
        ) as bar,
    ):
        history = metrics.rows  # every row so far; `metrics.write` appends to it
        if history:
            ckpt.last_loss = history[-1]["train_loss"]
        for epoch in range(first_epoch + 1, train.epochs + 1):
            xs, ys = epoch_batches(
                x_train, y_train, train.batch_size, config.seed, epoch
            )
            state, losses, accuracies = train_epoch(state, xs, ys)
            step = epoch * steps_per_epoch
            train_loss = float(losses.mean())
            runner.check_finite(step, loss=train_loss, checkpoints=ckpt)
            if epoch % train.eval_every == 0 or epoch == train.epochs:
                test_loss, test_acc, _ = evaluate(state, x_test, y_test)
                row = dict(
                    epoch=epoch,
                    step=step,
                    train_loss=train_loss,
                    train_accuracy=float(accuracies.mean()),
                    test_loss=float(test_loss),
                    test_accuracy=float(test_acc),
                    elapsed_s=time.perf_counter() - start,
                )
                metrics.write(**row)
                bar.set_postfix(
                    loss=f"{train_loss:.3g}", test_acc=f"{float(test_acc):.3f}"
                )
            ckpt.save(step, state, force=epoch == train.epochs, loss=train_loss)
            bar.update(1)
    ckpt.close()
    train_time = time.perf_counter() - start

    test_loss, test_acc, predictions = evaluate(state, x_test, y_test)
    confusion = sklearn.metrics.confusion_matrix(
        y_test, np.asarray(predictions), labels=range(NUM_CLASSES)
    )
    epochs = [r["epoch"] for r in history]
    loss = {"train loss": "train_loss", "test loss": "test_loss"}
    accuracy = {"train": "train_accuracy", "test": "test_accuracy"}
    # file: (y label, log y-axis, {curve: metrics column})
    curves = {
        "curves.png": ("cross-entropy", True, loss),
        "accuracy.png": ("accuracy", False, accuracy),
    }
    for name, (ylabel, logy, columns) in curves.items():
        plots.plot_curves(
            wd.path / name,
            epochs,
            {label: [r[column] for r in history] for label, column in columns.items()},
            xlabel="epoch",
            ylabel=ylabel,
            logy=logy,
            title=f"digits, jconv impl={config.model.impl}",
        )
    plots.plot_heatmaps(
        wd.path / "confusion.png",
        {"test confusion (row: true, column: predicted)": confusion},
        fmt="{:.0f}",
    )
    summary = dict(
        test_accuracy=float(test_acc),
        test_loss=float(test_loss),
        test_errors=int((predictions != y_test).sum()),
        n_test=len(y_test),
        n_train=len(y_train),
        first_train_loss=history[0]["train_loss"] if history else None,
        final_train_loss=history[-1]["train_loss"] if history else None,
        final_train_accuracy=history[-1]["train_accuracy"] if history else None,
        epochs=train.epochs,
        steps=train.epochs * steps_per_epoch,
        num_params=num_params,
        impl=config.model.impl,
        wall_seconds=train_time,
        plots=["curves.png", "accuracy.png", "confusion.png"],
        resumed_from_step=first_epoch * steps_per_epoch,
        device=str(jax.devices()[0].device_kind),
        backend=jax.default_backend(),
        cpu_count=os.cpu_count(),
        jax_version=jax.__version__,
    )
    wd.write_summary(summary)
    if not quiet:
        print(
            f"test accuracy {summary['test_accuracy']:.4f} "
            f"({summary['test_errors']}/{summary['n_test']} wrong), "
            f"{train_time:.1f} s, impl={config.model.impl}"
        )
    return summary


if __name__ == "__main__":
    runner.main(run)
