"""The JAX implementations: `jconv_auto`, `jconv_lax`, `jconv_einsum`,
`jconv_onednn`, `jconv_fft`, `jconv_winograd` and `lax_raw`.

`jconv_onednn` is `impl="onednn"`: oneDNN's CPU convolutions inside XLA
(`jconv._onednn`), float32 (bfloat16 computed in float32). Where it cannot
run (no extension, `JCONV_ONEDNN=0`, a backend other than the CPU), the
probe says why (`onednn_state`) and the orchestrator records its rows as
skipped with that reason.

`jconv_winograd` is a formulation `impl="auto"` may pick, not a value of
`impl`: it runs `jconv._winograd` directly, output and derivatives, on the
3x3 stride-1 shapes it computes (the others are skipped by the config).
`jconv_auto` rows record the plan auto picked (`plan`: output, input
gradient, kernel gradient).

One convolution is one call of the jitted step. For small shapes, `n > 1`
convolutions run inside one jitted `lax.fori_loop`, so Python dispatch is paid
once per call, not once per convolution (the worker also records the
single-call time of those shapes). The in_scan mode runs forward+backward the
way a training loop does, `case.scan_steps` steps inside one jitted
`lax.scan`. In a loop body XLA:CPU compiles the gradient convolutions that JAX
derives for `lax.conv_general_dilated` without its fast path, many times
slower (jax-ml/jax#12868): `lax_raw` still shows it; jconv's lax derivatives
are convolutions in XLA's canonical layout and keep the fast path, which the
in_scan / fwd+bwd ratio in results.md measures. Two things keep XLA from doing
less work in a loop than a real training step would:
  - the kernel is the loop carry (plus zero times an output element of the
    previous step), so each step depends on the one before and no
    convolution is loop-invariant and hoisted out of the loop;
  - the inputs pass through an `optimization_barrier` with the carry, so
    nothing computed from the input alone (the einsum's windows, the kernel
    gradient `x` and `ct` determine) is hoisted either, and the outputs pass
    through one before that single element is read, so no slice is pushed
    into the producer.
"""

from __future__ import annotations

import functools
import hashlib
import re

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from jax import lax

import jconv
from experiments.bench._cases import ConvCase, spatial_letters, winograd_applies
from experiments.bench._impl import Prepared, Unsupported
from jconv._onednn import RANKS as ONEDNN_RANKS
from jconv._plan import choose_plan, onednn_applies
from jconv._spec import conv_spec
from jconv._winograd import conv2d_winograd_core

IMPLS = (
    "jconv_auto", "jconv_lax", "jconv_einsum", "jconv_onednn", "jconv_fft",
    "jconv_winograd", "lax_raw",
)  # fmt: skip
_JCONV_IMPL = {
    "jconv_auto": "auto",
    "jconv_lax": "lax",
    "jconv_einsum": "einsum",
    "jconv_onednn": "onednn",
    "jconv_fft": "fft",
}


def onednn_state() -> dict:
    """Whether `impl="onednn"` runs in this process: `available`, `reason`
    (jconv's own words) where it does not, the oneDNN `version` loaded, and
    the spatial `ranks` it runs (`jconv._onednn.RANKS`)."""
    try:
        from jconv import _onednn
    except ImportError as e:  # a jconv without the implementation
        why = f"no jconv._onednn: {e}"
        return {"available": False, "reason": why, "version": "", "ranks": []}
    version, ranks = _onednn.status().version, list(_onednn.RANKS)
    try:
        # No extension, JCONV_ONEDNN=0, or a backend other than the CPU.
        _onednn.check(jnp.float32, None)
    except (ValueError, TypeError) as e:
        return {
            "available": False,
            "reason": str(e),
            "version": version,
            "ranks": ranks,
        }
    return {"available": True, "reason": "", "version": version, "ranks": ranks}


def meta() -> dict:
    device = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "jconv_onednn": onednn_state(),
    }


def conv_fn(impl: str, case: ConvCase):
    """`f(x, kernel) -> y` for `impl`, channels last (`x_nhwc`, `k_hwio` in
    2-D; `(N, W, C)` / `(N, D, H, W, C)` in 1-D / 3-D), and the API it goes
    through: `jconv.conv2d` for the 2-D rows, `jconv.conv` (the rank read from
    the kernel) for the others."""
    g = case.geometry
    if impl == "lax_raw":
        s = spatial_letters(g.rank)
        return functools.partial(
            lax.conv_general_dilated,
            window_strides=g.strides,
            padding=case.pads,
            rhs_dilation=g.dilation_rate,
            dimension_numbers=(f"N{s}C", f"{s}IO", f"N{s}C"),
            feature_group_count=g.groups,
        ), "jax.lax.conv_general_dilated"
    if impl == "jconv_winograd":
        return _winograd_fn(case), "jconv._winograd.conv2d_winograd_core"
    if impl not in _JCONV_IMPL:
        raise ValueError(f"unknown JAX impl {impl!r}; known: {IMPLS}")
    kw = dict(strides=g.strides, padding=g.padding, impl=_JCONV_IMPL[impl])
    if any(d != 1 for d in g.dilation_rate):
        kw["dilation_rate"] = g.dilation_rate
    suffix = "2d" if g.rank == 2 else ""
    if case.depthwise:
        *kernel_hw, _, c = case.kernel_shape
        depthwise = getattr(jconv, f"depthwise_conv{suffix}")

        # (*K, 1, C) and Keras' depthwise (*K, C, 1) share their memory
        # order: the reshape is free and gives the gradient back in the
        # grouped layout the other implementations return.
        def f(x, k):
            return depthwise(x, k.reshape(*kernel_hw, c, 1), **kw)

        return f, f"jconv.depthwise_conv{suffix}(impl={_JCONV_IMPL[impl]!r})"
    conv = getattr(jconv, f"conv{suffix}")
    return functools.partial(conv, groups=g.groups, **kw), (
        f"jconv.conv{suffix}(impl={_JCONV_IMPL[impl]!r})"
    )


def _spec(case: ConvCase, dtype):
    g = case.geometry
    return conv_spec(
        case.x_shape, case.kernel_shape, None,
        itemsize=jnp.dtype(dtype).itemsize, strides=g.strides, padding=g.padding,
        dilation_rate=g.dilation_rate, groups=g.groups,
        data_format="channels_last",
    )  # fmt: skip


def _winograd_fn(case: ConvCase):
    """Winograd's output and its derivatives (JAX's, of the same expressions)."""
    if not winograd_applies(case.geometry):
        raise Unsupported(
            "Winograd F(m x m, 3 x 3) computes 2-D 3x3 kernels at stride 1"
        )

    def f(x, k):
        return conv2d_winograd_core(x, k, _spec(case, x.dtype), None)

    return f


def auto_plan(case: ConvCase, dtype: str) -> str:
    """The plan `impl="auto"` picks for `case` on this backend."""
    backend = jax.default_backend()
    # As `impl="auto"` decides (`jconv._plan.conv2d_auto_core`).
    onednn = case.rank in ONEDNN_RANKS and onednn_applies(
        jnp.dtype(dtype), None, backend
    )
    plan = choose_plan(
        case.batch, case.geometry.c_in, case.kernel_shape, _spec(case, dtype),
        jnp.dtype(dtype), backend, onednn=onednn,
    )  # fmt: skip
    return "/".join(plan)


def step_fn(f, mode: str):
    """The work of one benchmark iteration, returning every compared output."""
    if mode == "fwd":
        return lambda x, k, ct: (f(x, k),)

    def fwd_bwd(x, k, ct):
        y, vjp = jax.vjp(f, x, k)
        return (y, *vjp(ct))

    return fwd_bwd


def _chained_step(step, x, k_carry, ct):
    """One loop step: `step`'s outputs and the next kernel, which depends on
    them (see the module doc) and equals `k_carry`."""
    xb, kb, ctb = lax.optimization_barrier((x, k_carry, ct))
    outs = lax.optimization_barrier(step(xb, kb, ctb))
    sink = sum(o.reshape(-1)[0].astype(jnp.float32) for o in outs)
    return outs, k_carry + (sink * 0).astype(k_carry.dtype)


def loop_fn(step):
    def loop(x, k, ct, n):
        def body(_, k_carry):
            return _chained_step(step, x, k_carry, ct)[1]

        return lax.fori_loop(0, n, body, k)

    return loop


def scan_fn(step, length: int):
    """`length` chained steps in one `lax.scan`, returning the last step's
    outputs (carried, as a training step's gradients are consumed)."""

    def scan(x, k, ct):
        def body(carry, _):
            outs, k_next = _chained_step(step, x, carry[0], ct)
            return (k_next, outs), None

        shapes = jax.eval_shape(step, x, k, ct)
        zeros = tuple(jnp.zeros(o.shape, o.dtype) for o in shapes)
        (_, outs), _ = lax.scan(body, (k, zeros), length=length)
        return outs

    return scan


def program_signature(compiled) -> list[str]:
    """The compiled program's instructions with names and source locations
    removed, sorted: equal for two programs that differ only in naming and in
    the order of independent instructions."""
    text = compiled.as_text()
    lines = []
    for line in text.splitlines():
        line = re.sub(r", metadata=\{[^}]*\}", "", line)
        line = re.sub(r"%[\w.-]+", "%", line)
        if " = " in line:
            lines.append(line.strip())
    return sorted(lines)


def _memory(compiled) -> dict:
    ma = compiled.memory_analysis()
    if ma is None:
        return {"peak_memory_bytes": None, "memory_method": "n/a: no analysis"}
    arg, out = ma.argument_size_in_bytes, ma.output_size_in_bytes
    temp, alias = ma.temp_size_in_bytes, ma.alias_size_in_bytes
    return {
        "peak_memory_bytes": int(arg + out + temp - alias),
        "memory_method": "XLA memory_analysis: argument + output + temp - alias",
        "memory_analysis": {
            "argument_bytes": int(arg),
            "output_bytes": int(out),
            "temp_bytes": int(temp),
            "alias_bytes": int(alias),
        },
    }


def prepare(impl: str, case: ConvCase, mode: str, dtype: str, arrays) -> Prepared:
    f, via = conv_fn(impl, case)
    step = step_fn(f, mode)
    in_scan = mode == "in_scan"
    scan_steps = case.scan_steps
    program = scan_fn(step, scan_steps) if in_scan else step
    dt = jnp.dtype(dtype)
    x, k, ct = (jnp.asarray(arrays[n], dt) for n in ("x", "kernel", "ct"))
    try:
        # jit drops the cotangent from the forward-only step (unused), so the
        # memory analysis below is the forward's own.
        compiled = jax.jit(program).lower(x, k, ct).compile()
    except Exception as e:  # a dtype or feature the backend has no kernel for
        raise Unsupported(f"{type(e).__name__}: {e}") from e
    loop = jax.jit(loop_fn(step))

    def outputs():
        return {
            name: np.asarray(o.astype(jnp.float32))
            for name, o in zip(("y", "dx", "dk"), compiled(x, k, ct))
        }

    def run(n):
        if in_scan:
            for _ in range(-(-n // scan_steps)):
                jax.block_until_ready(compiled(x, k, ct))
        elif n == 1:
            jax.block_until_ready(compiled(x, k, ct))
        else:
            loop(x, k, ct, jnp.int32(n)).block_until_ready()

    signature = "\n".join(program_signature(compiled))
    letters = spatial_letters(case.rank)
    info = {
        "via": via,
        "layout": f"N{letters}C / {letters}IO (native)",
        "device": jax.devices()[0].platform,
        # Equal for two rows that compiled the same program (jconv_auto where
        # it chose jconv_lax's plan): a time difference there is noise.
        "program_digest": hashlib.sha256(signature.encode()).hexdigest()[:16],
        **_memory(compiled),
    }
    if in_scan:
        info["scan_steps"] = scan_steps
    if impl == "jconv_auto":
        info["plan"] = auto_plan(case, dtype)
    if impl == "jconv_onednn":
        info["onednn_version"] = onednn_state()["version"]
    if impl == "jconv_lax" and not in_scan:
        raw = jax.jit(step_fn(conv_fn("lax_raw", case)[0], mode)).lower(x, k, ct)
        same = "\n".join(program_signature(raw.compile())) == signature
        info["same_program_as_lax_raw"] = same
    arg_bytes = x.nbytes + k.nbytes + (ct.nbytes if mode != "fwd" else 0)
    eager = None
    if mode == "fwd":
        # What a Python caller pays per call: jconv's public function (argument
        # checks, then its own jit) against a jitted raw lax call.
        direct = f if impl != "lax_raw" else jax.jit(f)

        def eager():
            jax.block_until_ready(direct(x, k))

    return Prepared(
        outputs=outputs, run=run, arg_bytes=int(arg_bytes), info=info, eager=eager
    )
