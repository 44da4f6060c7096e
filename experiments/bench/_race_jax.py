"""The kernel-learning race, jconv's side.

Training is `jconv.learn`'s: its model, loss (every image weighted 1: the mean
squared error, as Keras' "mse"), optimisers and `train_step`, in one jitted
`lax.scan` over all steps (full batch); compile time is measured apart from
the run. Besides the equal-steps race against Keras, it times how long each
candidate optimiser takes to bring the kernel within `target_error` (a jitted
`lax.while_loop` that stops on the true kernel: an oracle stop, fine for a
stopwatch), and the closed-form least-squares solves that are the floor.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
from jax import lax

from experiments.bench._jax_impls import meta as meta
from experiments.bench._race_data import score
from experiments.bench._timer import median_seconds, stopwatch
from jconv import learn


def _optimizer(name: str, learning_rate: float | None, spec: dict):
    """`jconv.learn`'s optimiser, with the hyperparameters Keras is given too;
    L-BFGS without a rate takes the step its line search picks (rate 1)."""
    return learn.make_optimizer(
        name,
        learning_rate or 1.0,
        momentum=spec["momentum"],
        adam_epsilon=spec["adam_epsilon"],
    )


def _timed(fn, args, repeats: int):
    """(compile seconds, median run seconds, result) of `jax.jit(fn)`."""
    compile_s, compiled = stopwatch(lambda: jax.jit(fn).lower(*args).compile())
    out = jax.block_until_ready(compiled(*args))  # warm-up
    run_s = median_seconds(lambda: jax.block_until_ready(compiled(*args)), repeats)
    return compile_s, run_s, out


def race(spec: dict) -> dict:
    with np.load(spec["data"]) as d:
        data = {k: d[k] for k in ("x", "t", "true_kernel")}
    x, t = jnp.asarray(data["x"]), jnp.asarray(data["t"])
    true_k = jnp.asarray(data["true_kernel"])
    kh, kw = true_k.shape
    true = {"kernel": true_k[..., None, None]}
    problem = learn.Problem(x, t, jnp.ones(x.shape[0]), true)
    repeats = spec["repeats"]

    def step_fn(impl: str, opt):
        model = learn.ConvModel((kh, kw, 1, 1), impl=impl, precision=spec["precision"])
        return model.zeros(), functools.partial(learn.train_step, model, opt)

    out = {}
    # 1. Equal steps, same optimiser and learning rate as Keras.
    opt = _optimizer(spec["optimizer"], spec["learning_rate"], spec)
    by_impl = {}
    for impl in spec["impls"]:
        params0, step = step_fn(impl, opt)

        def train(params, problem, step=step):
            def body(carry, _):
                params, state, loss = step(*carry, problem)
                return (params, state), loss

            carry = (params, opt.init(params))
            (params, _), losses = lax.scan(body, carry, length=spec["steps"])
            return params["kernel"], losses

        compile_s, run_s, (k, losses) = _timed(train, (params0, problem), repeats)
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
        opt = _optimizer(name, float(lr) if lr else None, spec)
        params0, step = step_fn(spec["fast_impl"], opt)

        def solve(params, problem, step=step, opt=opt):
            def cond(c):
                params, _, i = c
                err = jnp.max(jnp.abs(params["kernel"] - problem.true_params["kernel"]))
                return (err > target) & (i < max_steps)

            def body(c):
                params, state, i = c
                params, state, _ = step(params, state, problem)
                return params, state, i + 1

            carry = (params, opt.init(params), 0)
            params, _, i = lax.while_loop(cond, body, carry)
            return params["kernel"], i

        compile_s, run_s, (k, steps) = _timed(solve, (params0, problem), repeats)
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
        sol = jnp.linalg.lstsq(learn.patch_matrix_jax(x, (kh, kw)), t.reshape(-1))[0]
        return sol.reshape(kh, kw)

    def qr(x, t):
        q, r = jnp.linalg.qr(learn.patch_matrix_jax(x, (kh, kw)))
        rhs = jnp.matmul(q.T, t.reshape(-1), precision=lax.Precision.HIGHEST)
        return jax.scipy.linalg.solve_triangular(r, rhs).reshape(kh, kw)

    def normal_equations(x, t):
        p = learn.patch_matrix_jax(x, (kh, kw))
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
