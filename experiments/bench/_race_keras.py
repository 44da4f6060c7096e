"""The kernel-learning race, Keras' side: `model.fit` on the TensorFlow backend.

The model is one `Conv2D(1, 3x3, no bias, zeros initialiser)` trained on the
same arrays, loss "mse", the same optimiser and learning rate, one full batch
per step. The data is a `tf.data` dataset repeating that one batch, so a
single `fit` call runs every step in one epoch (no per-epoch overhead): the
fastest way to drive `fit` with Keras' defaults (`steps_per_execution=1`,
`jit_compile="auto"`). The first `fit` call traces the train function; it is
timed apart, then the kernel and the optimiser state are reset to zero.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras
import numpy as np
import tensorflow as tf

from experiments.bench._race_data import score
from experiments.bench._timer import median_seconds, stopwatch


def meta() -> dict:
    return {"keras": keras.__version__, "tensorflow": tf.__version__}


def make_optimizer(name: str, learning_rate: float, spec: dict):
    """The Keras counterpart of `jconv.learn.make_optimizer`: SGD and momentum
    are the same update; Adam differs only in where epsilon enters."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate)
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate, momentum=spec["momentum"])
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, epsilon=spec["adam_epsilon"])
    raise ValueError(f"optimiser {name!r} has no Keras counterpart here")


def _reset(model) -> None:
    layer = model.layers[-1]
    layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
    for v in model.optimizer.variables:
        if not v.path.endswith("learning_rate"):
            v.assign(np.zeros(v.shape, v.dtype))


def _fit(x, dataset, spec: dict, first_steps: int, **compile_kwargs):
    """A model compiled with `compile_kwargs`, the seconds of its first `fit`
    (`first_steps` steps, tracing included), and the median seconds of a `fit`
    of every step from zero (kernel and optimiser state reset untimed)."""
    kh, kw = spec["kernel_hw"]
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.Conv2D(
                1, (kh, kw), use_bias=False, kernel_initializer="zeros"
            ),
        ]
    )
    model.compile(
        optimizer=make_optimizer(spec["optimizer"], spec["learning_rate"], spec),
        loss="mse",
        **compile_kwargs,
    )

    def fit(steps=spec["steps"]):
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)

    first, _ = stopwatch(fit, first_steps)
    seconds = median_seconds(fit, spec["keras_repeats"], reset=lambda: _reset(model))
    return model, first, seconds


def _fastest_fit(x, dataset, spec) -> dict:
    """The same training with Keras' fastest settings: the step compiled by XLA
    (`jit_compile=True`) and every step in one call (`steps_per_execution`)."""
    steps = spec["steps"]
    model, first, seconds = _fit(
        x, dataset, spec, steps, jit_compile=True, steps_per_execution=steps
    )
    err = np.abs(model.layers[-1].kernel.numpy()[..., 0, 0] - spec["true_kernel"])
    return {
        "seconds": seconds,
        "first_fit_seconds": first,
        "kernel_max_abs_error": float(err.max()),
    }


def race(spec: dict) -> dict:
    with np.load(spec["data"]) as d:
        data = {k: d[k] for k in ("x", "t", "true_kernel")}
    x, t = data["x"], data["t"]
    kh, kw = data["true_kernel"].shape
    spec = dict(spec, kernel_hw=(kh, kw), true_kernel=data["true_kernel"])
    keras.utils.set_random_seed(0)
    dataset = tf.data.Dataset.from_tensors((x, t)).repeat()
    model, first_fit, seconds = _fit(x, dataset, spec, 1)
    kernel = model.layers[-1].kernel.numpy()[..., 0, 0]
    fast = _fastest_fit(x, dataset, spec)
    return {
        "fast": fast,
        "seconds": seconds,
        "first_fit_seconds": first_fit,
        "iterations": int(model.optimizer.iterations.numpy()),
        "jit_compile": bool(model.jit_compile),
        "steps_per_execution": int(getattr(model, "steps_per_execution", 1) or 1),
        **score(data, kernel),
    }
