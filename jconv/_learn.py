"""Learning a convolution's kernel (and bias) from input/output pairs by gradient
descent: the model, the loss, optax optimisers by name, and a training loop
compiled as one `lax.scan` per chunk of steps.

Several independent problems (one per true kernel, or per point of a sweep)
are stacked on a leading axis `G` and trained at once under `jax.vmap`: each
keeps its own parameters and optimiser state (an L-BFGS line search included),
so stacking changes nothing about any one of them.

The layer is a convolution of any spatial rank, read from the kernel's shape:
1-D signals `(N, W, C)`, 2-D images `(N, H, W, C)`, 3-D volumes
`(N, D, H, W, C)`.

The same jitted step runs on one device or many: place the problems on a
device mesh as `problem_specs` says (pairs split over the mesh axis `"data"`,
the first spatial axis over `"height"`) and XLA splits every step, exchanging
halo rows and summing gradients across devices itself.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec

from jconv._conv import _check_impl, conv
from jconv._lstsq import check_patch_input
from jconv._spec import RANKS, canonical_precision

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "rmsprop", "lbfgs")
SCHEDULES = ("constant", "cosine", "exponential", "warmup_cosine")
# Mesh axis names `problem_specs` splits over: the pairs (data parallelism)
# and the first spatial axis (image rows; large inputs).
DATA_AXIS = "data"
HEIGHT_AXIS = "height"


@dataclasses.dataclass(frozen=True)
class ConvModel:
    """A `Conv1D`, `Conv2D` or `Conv3D` layer to learn: shapes and `jconv.conv`
    arguments (hashable). The spatial rank `r` is read from `kernel_shape`.

    Attributes:
      kernel_shape: `(*K, C_in, C_out)`: `(KW, C_in, C_out)` for 1-D,
        `(KH, KW, C_in, C_out)` for 2-D, `(KD, KH, KW, C_in, C_out)` for 3-D.
      use_bias: learn a bias `(C_out,)` too.
      strides, padding, impl, precision: passed to `jconv.conv` (`padding`
        "causal" included).

    Raises:
      ValueError: `kernel_shape` of another length, or an unknown `impl` or
        `precision`, named.
    """

    kernel_shape: tuple[int, ...]
    use_bias: bool = False
    strides: Any = 1
    padding: Any = "valid"
    impl: str = "auto"
    precision: Any = "highest"

    def __post_init__(self):
        if len(self.kernel_shape) - 2 not in RANKS:
            raise ValueError(
                f"`kernel_shape` (={self.kernel_shape!r}) must have 3, 4 or 5 "
                "entries, (*K, C_in, C_out) for a 1-, 2- or 3-D kernel"
            )
        # Checked as `conv` checks them (names in any case), at construction.
        _check_impl(self.impl)
        canonical_precision(self.precision)

    @property
    def rank(self) -> int:
        """The number of spatial axes, 1 to 3."""
        return len(self.kernel_shape) - 2

    def zeros(self) -> dict:
        """Parameters all zero: `{"kernel": (*K, C_in, C_out)[, "bias"]}`."""
        params = {"kernel": jnp.zeros(self.kernel_shape, jnp.float32)}
        if self.use_bias:
            params["bias"] = jnp.zeros(self.kernel_shape[-1:], jnp.float32)
        return params

    def apply(self, params: dict, x):
        """`conv(x, kernel, bias)`: `(N, *S, C_in)` -> `(N, *S_out, C_out)`."""
        return conv(
            x,
            params["kernel"],
            params.get("bias"),
            strides=self.strides,
            padding=self.padding,
            impl=self.impl,
            precision=self.precision,
        )


class Problem(NamedTuple):
    """Input/output pairs and the parameters that made them.

    Shapes for one problem (a stack of `G` problems adds a leading axis):
      x: `(N, *S, C_in)`; y: `(N, *S_out, C_out)` (`S`: `W`, `H, W` or
      `D, H, W`);
      weight: `(N,)`, each pair's weight in the loss (0 leaves a pair out);
      true_params: like `ConvModel.zeros()`.
    """

    x: jax.Array
    y: jax.Array
    weight: jax.Array
    true_params: dict


def problem_specs(axis_names) -> Problem:
    """How stacked problems are split over a device mesh, as `PartitionSpec`s.

    The pairs `N` go over the mesh axis `"data"` and the first spatial axis
    (a signal's `W`, an image's rows `H`, a volume's `D`) over `"height"`,
    each only if `axis_names` has it; the true parameters (and
    the training state) are replicated. With `jax.sharding.NamedSharding`,
    these make every step of `make_train_chunk` data-parallel (and split each
    image's rows) without changing its code.

    Args:
      axis_names: the mesh's axis names (`mesh.axis_names`).

    Returns:
      A `Problem` whose fields are `PartitionSpec`s, for stacked problems:
      `x`, `y`: `(G, N, *S, C)`; `weight`: `(G, N)`; `true_params`: all.

    Example:
      >>> specs = problem_specs(("data",))
      >>> specs.x, specs.weight
      (P(None, 'data', None), P(None, 'data'))
    """
    data = DATA_AXIS if DATA_AXIS in axis_names else None
    height = HEIGHT_AXIS if HEIGHT_AXIS in axis_names else None
    pairs = PartitionSpec(None, data, height)
    return Problem(
        x=pairs, y=pairs, weight=PartitionSpec(None, data), true_params=PartitionSpec()
    )


class TrainState(NamedTuple):
    """Everything a checkpoint holds: the step, parameters, optimiser state."""

    step: jax.Array
    params: dict
    opt_state: Any


class Metrics(NamedTuple):
    """Per-problem values, each of shape `(G,)` for a stack of problems."""

    loss: jax.Array
    grad_norm: jax.Array
    kernel_max_abs_error: jax.Array
    bias_max_abs_error: jax.Array


def loss_fn(model: ConvModel, params: dict, problem: Problem) -> jax.Array:
    """Weighted mean over pairs of each pair's mean squared error (one problem)."""
    residual = model.apply(params, problem.x) - problem.y
    per_pair = jnp.mean(residual**2, axis=tuple(range(1, residual.ndim)))
    return jnp.sum(problem.weight * per_pair) / jnp.sum(problem.weight)


def patch_matrix_jax(x, kernel_size) -> jax.Array:
    """`patch_matrix` for "valid" padding and stride 1, in JAX: traceable, so a
    jitted closed-form solve builds its own matrix, in the input's dtype.

    Args:
      x: inputs `(N, *S, C_in)`, `S` of rank 1 to 3.
      kernel_size: `(*K)`, one int per spatial axis, at most `S` (an int: the
        same on every axis).

    Returns:
      `P`, `(N * prod(S_out), prod(K) * C_in)` with `S_out = S - K + 1`: rows
      over `(n, *i)`, columns over `(*k, c)`, so
      `conv(x, k).reshape(-1, C_out) == P @ k.reshape(-1, C_out)`.

    Raises:
      ValueError: `x` not of rank `2 + len(kernel_size)`, or `kernel_size`
        not positive or larger than the input, named.

    Example (the document's image: four windows, nine weights):
      >>> from jconv import document
      >>> image = jnp.asarray(document.IMAGE, jnp.float32)[None, :, :, None]
      >>> p = patch_matrix_jax(image, (3, 3))
      >>> p.shape
      (4, 9)
      >>> (p @ jnp.ravel(jnp.asarray(document.KERNEL, jnp.float32))).tolist()
      [56.0, 76.0, 175.0, 302.0]
    """
    ks = check_patch_input(jnp.shape(x), kernel_size)
    n, *sizes, c = jnp.shape(x)
    if any(k > size for k, size in zip(ks, sizes)):
        raise ValueError(f"`kernel_size` {ks} is larger than the input {tuple(sizes)}")
    out = tuple(size - k + 1 for size, k in zip(sizes, ks))
    taps = [
        x[(slice(None), *(slice(o, o + m) for o, m in zip(offsets, out)))]
        for offsets in np.ndindex(*ks)
    ]
    rank = len(ks)
    return jnp.stack(taps, axis=rank + 1).reshape(n * math.prod(out), math.prod(ks) * c)


def make_schedule(
    learning_rate: float,
    schedule: str = "constant",
    *,
    total_steps: int = 1,
    warmup_steps: int = 0,
    end_factor: float = 0.0,
) -> optax.Schedule:
    """A learning-rate schedule by name.

    Args:
      learning_rate: the peak (initial, after warmup) learning rate, positive.
      schedule: `"constant"`; `"cosine"` (to `end_factor * learning_rate` at
        `total_steps`); `"exponential"` (multiplied by `end_factor` over
        `total_steps`, smoothly); `"warmup_cosine"` (linear from 0 over
        `warmup_steps`, then cosine to `end_factor * learning_rate`).

    Raises:
      ValueError: unknown schedule or bad value, named.
    """
    if not learning_rate > 0:
        raise ValueError(f"`learning_rate` (={learning_rate!r}) must be positive")
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` (={schedule!r}) must be one of {SCHEDULES}")
    if not 0 <= end_factor <= 1:
        raise ValueError(f"`end_factor` (={end_factor!r}) must be in [0, 1]")
    if schedule == "constant":
        return optax.constant_schedule(learning_rate)
    if schedule == "cosine":
        return optax.cosine_decay_schedule(learning_rate, total_steps, end_factor)
    if schedule == "exponential":
        if end_factor <= 0:
            raise ValueError(
                f"`end_factor` (={end_factor!r}) must be positive for 'exponential'"
            )
        return optax.exponential_decay(learning_rate, total_steps, end_factor)
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"`warmup_steps` (={warmup_steps!r}) must be in [0, total_steps "
            f"(={total_steps}))"
        )
    return optax.warmup_cosine_decay_schedule(
        0.0,
        learning_rate,
        warmup_steps,
        total_steps,
        end_value=end_factor * learning_rate,
    )


def make_optimizer(
    name: str,
    learning_rate: float,
    *,
    momentum: float = 0.9,
    schedule: str = "constant",
    total_steps: int = 1,
    warmup_steps: int = 0,
    end_factor: float = 0.0,
    memory_size: int = 10,
    adam_epsilon: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    """An optax optimiser by name.

    Args:
      name: `"sgd"`, `"momentum"` (heavy ball), `"nesterov"`, `"adam"`,
        `"rmsprop"` or `"lbfgs"` (zoom line search; `learning_rate` scales
        the step the line search picks: keep it 1.0).
      learning_rate: peak learning rate, shaped by `schedule` (see
        `make_schedule`).
      momentum: for `"momentum"` and `"nesterov"`, in [0, 1).
      memory_size: L-BFGS history length.
      adam_epsilon: for `"adam"`, added to the denominator (optax's default;
        Keras' is 1e-7).

    Raises:
      ValueError: unknown name or bad value, named.

    Example:
      >>> opt = make_optimizer("momentum", 0.1, momentum=0.5)
      >>> params = {"kernel": jnp.ones(3)}
      >>> updates, _ = opt.update(params, opt.init(params), params)
      >>> updates["kernel"].tolist()
      [-0.10000000149011612, -0.10000000149011612, -0.10000000149011612]
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer `name` (={name!r}) must be one of {OPTIMIZERS}")
    if not 0 <= momentum < 1:
        raise ValueError(f"`momentum` (={momentum!r}) must be in [0, 1)")
    lr = make_schedule(
        learning_rate,
        schedule,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        end_factor=end_factor,
    )
    if name == "sgd":
        return optax.sgd(lr)
    if name in ("momentum", "nesterov"):
        return optax.sgd(lr, momentum=momentum, nesterov=name == "nesterov")
    if name == "adam":
        return optax.adam(lr, eps=adam_epsilon)
    if name == "rmsprop":
        return optax.rmsprop(lr)
    if memory_size < 1:
        raise ValueError(f"`memory_size` (={memory_size!r}) must be positive")
    return optax.lbfgs(learning_rate=lr, memory_size=memory_size)


def _keeps_value(opt_state) -> bool:
    # Line-search optimisers (L-BFGS) store the value and gradient at the new
    # parameters; reusing them saves one evaluation per step.
    return optax.tree.get(opt_state, "value") is not None


def _metrics(model: ConvModel, params: dict, problem: Problem) -> Metrics:
    loss, grad = jax.value_and_grad(functools.partial(loss_fn, model))(params, problem)
    true = problem.true_params
    kernel_err = jnp.max(jnp.abs(params["kernel"] - true["kernel"]))
    bias_err = (
        jnp.max(jnp.abs(params["bias"] - true["bias"]))
        if "bias" in params
        else jnp.zeros((), kernel_err.dtype)
    )
    return Metrics(loss, optax.tree.norm(grad), kernel_err, bias_err)


def train_step(
    model: ConvModel,
    optimizer: optax.GradientTransformationExtraArgs,
    params: dict,
    opt_state,
    problem: Problem,
):
    """One optimiser step on `loss_fn` for one problem (no stacking axis):
    `(params, opt_state, loss before the step)`. Traceable: `make_train_chunk`
    scans it under `vmap`; a loop with its own stopping rule can call it too.

    Example:
      >>> model = ConvModel(kernel_shape=(1, 1, 1, 1))
      >>> x = jnp.ones((1, 2, 2, 1))
      >>> problem = Problem(x, 2 * x, jnp.ones(1), {})
      >>> opt = make_optimizer("sgd", 0.25)
      >>> params = model.zeros()
      >>> params, _, loss = train_step(model, opt, params, opt.init(params), problem)
      >>> float(loss), params["kernel"].ravel().tolist()
      (4.0, [1.0])
    """
    fn = lambda p: loss_fn(model, p, problem)
    if _keeps_value(opt_state):
        value, grad = optax.value_and_grad_from_state(fn)(params, state=opt_state)
    else:
        value, grad = jax.value_and_grad(fn)(params)
    updates, opt_state = optimizer.update(
        grad, opt_state, params, value=value, grad=grad, value_fn=fn
    )
    return optax.apply_updates(params, updates), opt_state, value


def init_state(
    model: ConvModel, optimizer: optax.GradientTransformation, num_problems: int
) -> TrainState:
    """Step 0: zero parameters for each of `num_problems` stacked problems."""
    params = jax.tree.map(
        lambda a: jnp.zeros((num_problems, *a.shape), a.dtype), model.zeros()
    )
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=jax.vmap(optimizer.init)(params),
    )


def make_train_chunk(
    model: ConvModel, optimizer: optax.GradientTransformation, chunk_steps: int
):
    """A jitted `(state, problems) -> (state, metrics, losses)` that runs
    `chunk_steps` optimiser steps as one `lax.scan` over a `vmap` of the
    problems.

    `metrics` (a `Metrics` of `(G,)` arrays) are taken at the parameters after
    the chunk; `losses`, `(chunk_steps, G)`, is the loss before each step (row
    `i`: at step `state.step + i`), to find where a loss first went NaN.
    Running two chunks of `n` steps gives exactly the state of one chunk of
    `2n` steps computed the same way: a run resumed from a checkpoint ends
    where an uninterrupted run does.

    The same function serves one device or a mesh of them: with `problems`
    placed by `problem_specs` and the state replicated, XLA partitions each
    step (the loss's mean over pairs becomes a sum across devices).
    """
    if chunk_steps < 1:
        raise ValueError(f"`chunk_steps` (={chunk_steps!r}) must be positive")
    step = jax.vmap(functools.partial(train_step, model, optimizer))

    @jax.jit
    def chunk(state: TrainState, problems: Problem):
        def body(carry, _):
            params, opt_state, loss = step(*carry, problems)
            return (params, opt_state), loss

        (params, opt_state), losses = jax.lax.scan(
            body, (state.params, state.opt_state), None, length=chunk_steps
        )
        metrics = jax.vmap(functools.partial(_metrics, model))(params, problems)
        new_state = TrainState(state.step + chunk_steps, params, opt_state)
        return new_state, metrics, losses

    return chunk


def evaluate(model: ConvModel, params: dict, problems: Problem) -> Metrics:
    """`Metrics` of stacked parameters on stacked problems."""
    return jax.jit(jax.vmap(functools.partial(_metrics, model)))(params, problems)
