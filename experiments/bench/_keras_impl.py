"""The Keras peer: `keras.layers.Conv1D` / `Conv2D` / `Conv3D` by the case's
rank, on the TensorFlow backend.

Keras must run on TensorFlow here: on JAX it would time lax against itself.
The layer is called inside a `tf.function` (graph mode, TensorFlow's oneDNN
kernels on the CPU; no XLA, as Keras' own `fit` on the CPU does). The
depthwise shapes use `keras.layers.DepthwiseConv1D` / `DepthwiseConv2D`,
Keras' layers for them (it has no DepthwiseConv3D: `Conv3D(groups=C)`); a
grouped shape that is not depthwise uses `Conv*D(groups=...)`, which Keras
itself compiles with XLA on TensorFlow (TensorFlow has no grouped convolution
kernel on the CPU). The causal 1-D rows use Conv1D's own
`padding="causal"` (Keras has it in Conv1D only). Layout: channels last,
kernel `(*K, I, O)` (NHWC / HWIO in 2-D), the same as jconv's, so nothing is
converted.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras
import numpy as np
import tensorflow as tf

from experiments.bench import _machine
from experiments.bench._cases import ConvCase, spatial_letters
from experiments.bench._impl import Prepared, Unsupported

if keras.backend.backend() != "tensorflow":
    raise RuntimeError(
        f"Keras runs on {keras.backend.backend()!r}; the benchmark needs "
        "KERAS_BACKEND=tensorflow set before anything imports keras"
    )


def meta() -> dict:
    return {
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "keras_backend": keras.backend.backend(),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tensorflow_onednn": _machine.tensorflow_onednn(),
    }


def make_layer(case: ConvCase, dtype: str):
    """The Keras layer for `case`, built, and its kernel shape.

    Raises:
      Unsupported: a case Keras cannot express ("causal" padding outside
        1-D); Keras' own errors for the rest (strides and dilation both over
        1) are recorded alike.
    """
    g = case.geometry
    r = case.rank
    *kernel_hw, _, c_out = case.kernel_shape
    if g.padding == "causal" and r != 1:
        raise Unsupported(f'Keras has padding="causal" in Conv1D only, not Conv{r}D')
    common = dict(
        strides=g.strides, padding=g.padding, dilation_rate=g.dilation_rate,
        use_bias=False, dtype=dtype,
    )  # fmt: skip
    if case.depthwise and r < 3:
        layer_type = getattr(keras.layers, f"DepthwiseConv{r}D")
        layer = layer_type(tuple(kernel_hw), depth_multiplier=1, **common)
        shape = (*kernel_hw, g.c_in, 1)
    else:
        layer_type = getattr(keras.layers, f"Conv{r}D")
        layer = layer_type(c_out, tuple(kernel_hw), groups=g.groups, **common)
        shape = case.kernel_shape
    layer.build(case.x_shape)
    return layer, shape


def prepare(impl: str, case: ConvCase, mode: str, dtype: str, arrays) -> Prepared:
    layer, k_shape = make_layer(case, dtype)
    layer.kernel.assign(tf.cast(arrays["kernel"].reshape(k_shape), dtype))
    x = tf.cast(tf.constant(arrays["x"]), dtype)
    ct = tf.cast(tf.constant(arrays["ct"]), dtype)

    if mode == "fwd":

        def step():
            return (layer(x),)

    else:

        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
            dx, dk = tape.gradient(y, [x, layer.kernel], output_gradients=ct)
            return y, dx, dk

    step_graph = tf.function(step)

    @tf.function
    def loop(n):
        sink = tf.zeros((), tf.float32)
        for _ in tf.range(n):
            # The kernel is read inside the loop, so nothing is loop-invariant.
            for out in step():
                sink += tf.cast(tf.reshape(out, [-1])[0], tf.float32)
        return sink

    def outputs():
        y, *grads = (t.numpy().astype(np.float32) for t in step_graph())
        out = {"y": y}
        if grads:
            out["dx"] = grads[0]
            out["dk"] = grads[1].reshape(case.kernel_shape)
        return out

    def run(n):
        if n == 1:
            # Eager calls on the CPU return once the graph has run.
            step_graph()
        else:
            loop(tf.constant(n)).numpy()

    sizes = [arrays["x"].size, arrays["kernel"].size]
    if mode != "fwd":
        sizes.append(arrays["ct"].size)
    arg_bytes = tf.as_dtype(dtype).size * int(sum(sizes))
    grouped = case.geometry.groups > 1 and "Depthwise" not in type(layer).__name__
    letters = spatial_letters(case.rank)
    info = {
        "via": f"keras.layers.{type(layer).__name__} in tf.function "
        + (
            "(Keras compiles the grouped convolution with XLA)"
            if grouped
            else "(no XLA)"
        ),
        "layout": f"N{letters}C / {letters}IO (native)",
    }
    return Prepared(outputs=outputs, run=run, arg_bytes=arg_bytes, info=info)
