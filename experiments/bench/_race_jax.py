"""The kernel-learning race, jconv's side.

Training is one jitted `lax.scan` over all steps (full batch, the loss a mean
squared error as Keras' "mse"); compile time is measured apart from the run.
Besides the equal-steps race against Keras, it times how long each candidate
optimiser takes to bring the kernel within `target_error` (a jitted
`lax.while_loop` that stops on the true kernel: an oracle stop, fine for a
stopwatch), and the closed-form least-squares solves that are the floor.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
import optax
from jax import lax

import jconv
from experiments.bench._race_data import score


def meta() -> dict:
    device = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "platform": device.platform,
        "device_kind": device.device_kind,
    }


def make_optimizer(name: str, learning_rate, spec: dict):
    """optax optimiser by name, with the hyperparameters Keras is given too."""
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "momentum":
        return optax.sgd(learning_rate, momentum=spec["momentum"])
    if name == "adam":
        return optax.adam(learning_rate, eps=spec["adam_epsilon"])
    if name == "lbfgs":
        return optax.lbfgs(learning_rate=learning_rate)
    raise ValueError(f"unknown optimiser {name!r}")


def _timed(fn, args, repeats: int):
    """(compile seconds, median run seconds, last result) of `jax.jit(fn)`."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    out = jax.block_until_ready(compiled(*args))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return compile_s, statistics.median(times), out


def _loss_fn(x, t, impl: str, precision):
    def loss(k):
        y = jconv.conv2d(x, k, impl=impl, precision=precision)
        return jnp.mean((y - t) ** 2)

    return loss


def _step(opt, loss, line_search: bool):
    """One optimiser step; L-BFGS gets the extra arguments its line search needs."""
    if line_search:
        value_and_grad = optax.value_and_grad_from_state(loss)

        def step(k, state):
            value, grad = value_and_grad(k, state=state)
            updates, state = opt.update(
                grad, state, k, value=value, grad=grad, value_fn=loss
            )
            return optax.apply_updates(k, updates), state, value

    else:

        def step(k, state):
            value, grad = jax.value_and_grad(loss)(k)
            updates, state = opt.update(grad, state, k)
            return optax.apply_updates(k, updates), state, value

    return step


def _patches(x_nhw1, kh: int, kw: int):
    """The least-squares design matrix: one row per output pixel, one column
    per kernel tap (row-major), built by slicing."""
    n, h, w, _ = x_nhw1.shape
    ho, wo = h - kh + 1, w - kw + 1
    cols = [x_nhw1[:, a : a + ho, b : b + wo, 0] for a in range(kh) for b in range(kw)]
    return jnp.stack(cols, axis=-1).reshape(n * ho * wo, kh * kw)


def race(spec: dict) -> dict:
    with np.load(spec["data"]) as d:
        data = {k: d[k] for k in ("x", "t", "true_kernel")}
    x, t = jnp.asarray(data["x"]), jnp.asarray(data["t"])
    true_k = jnp.asarray(data["true_kernel"])
    kh, kw = true_k.shape
    k0 = jnp.zeros((kh, kw, 1, 1), jnp.float32)
    precision, repeats = spec["precision"], spec["repeats"]
    out = {}

    # 1. Equal steps, same optimiser and learning rate as Keras.
    by_impl = {}
    for impl in spec["impls"]:
        opt = make_optimizer(spec["optimizer"], spec["learning_rate"], spec)

        def train(k0, x, t, opt=opt, impl=impl):
            step = _step(
                opt, _loss_fn(x, t, impl, precision), spec["optimizer"] == "lbfgs"
            )

            def body(carry, _):
                k, state, loss = step(*carry)
                return (k, state), loss

            (k, _), losses = lax.scan(body, (k0, opt.init(k0)), length=spec["steps"])
            return k, losses

        compile_s, run_s, (k, losses) = _timed(train, (k0, x, t), repeats)
        losses = np.asarray(losses)
        every = max(1, len(losses) // 200)
        by_impl[impl] = {
            "seconds": run_s,
            "compile_seconds": compile_s,
            **score(data, np.asarray(k)[..., 0, 0]),
            "loss_curve": {
                "step": list(range(1, len(losses) + 1, every)),
                "loss": losses[::every].tolist(),
            },
        }
    out["equal_steps"] = by_impl

    # 2. Time to a kernel error of `target_error`, per candidate optimiser.
    target, max_steps = spec["target_error"], spec["max_steps"]
    to_target = {}
    for cand in spec["fast_candidates"]:
        name, _, lr = cand.partition(":")
        opt = make_optimizer(name, float(lr) if lr else None, spec)

        def solve(k0, x, t, true_k, opt=opt, name=name):
            loss = _loss_fn(x, t, spec["fast_impl"], precision)
            step = _step(opt, loss, name == "lbfgs")

            def cond(c):
                k, _, i = c
                err = jnp.max(jnp.abs(k[..., 0, 0] - true_k))
                return (err > target) & (i < max_steps)

            def body(c):
                k, state, i = c
                k, state, _ = step(k, state)
                return k, state, i + 1

            k, _, i = lax.while_loop(cond, body, (k0, opt.init(k0), 0))
            return k, i

        compile_s, run_s, (k, steps) = _timed(solve, (k0, x, t, true_k), repeats)
        s = score(data, np.asarray(k)[..., 0, 0])
        to_target[cand] = {
            "seconds": run_s,
            "compile_seconds": compile_s,
            "steps": int(steps),
            "reached": s["kernel_max_abs_error"] <= target,
            "kernel_max_abs_error": s["kernel_max_abs_error"],
        }
    out["to_target"] = to_target

    # 3. The closed-form floor: the same equations solved directly.
    def lstsq(x, t):
        sol = jnp.linalg.lstsq(_patches(x, kh, kw), t.reshape(-1))[0]
        return sol.reshape(kh, kw)

    def qr(x, t):
        q, r = jnp.linalg.qr(_patches(x, kh, kw))
        rhs = jnp.matmul(q.T, t.reshape(-1), precision=lax.Precision.HIGHEST)
        return jax.scipy.linalg.solve_triangular(r, rhs).reshape(kh, kw)

    def normal_equations(x, t):
        p = _patches(x, kh, kw)
        hp = lax.Precision.HIGHEST
        gram = jnp.matmul(p.T, p, precision=hp)
        rhs = jnp.matmul(p.T, t.reshape(-1), precision=hp)
        return jnp.linalg.solve(gram, rhs).reshape(kh, kw)

    floors = {}
    for name, fn in (
        ("lstsq", lstsq),
        ("qr", qr),
        ("normal_equations", normal_equations),
    ):
        compile_s, run_s, k = _timed(fn, (x, t), repeats)
        floors[name] = {
            "seconds": run_s,
            "compile_seconds": compile_s,
            "kernel_max_abs_error": score(data, np.asarray(k))["kernel_max_abs_error"],
        }
    out["closed_form"] = floors
    return out
