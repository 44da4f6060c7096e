"""The kernel-learning experiments: config checks, pairs, training with
checkpoints, the least-squares reference, summary, plots and text.

`run(config, workdir)` is what `python -m experiments.learn_kernel` calls. The config's
`experiment` field picks one of:

- `"document_example"`: the tutorial's worked example, both implementations,
  "valid" and "same", next to the document's claims and errata.
- `"learn"`: one or more true kernels (`target.kernels`), each learned from
  zeros by gradient descent on the same inputs, stacked and trained at once.
- `"noise_sweep"`: one true kernel learned at every (noise level, number of
  pairs) of a grid, next to the least-squares estimate at each point.

The kernels are 1-D, 2-D or 3-D, as the inputs are (`data.source`:
"random_signal" gives signals, "random_volume" volumes, the others images);
everything below works at every rank, the plots drawing each its own way.

Each learning problem's least-squares solution (`jconv.learn.lstsq` on the
patch matrix, float64) is the independent reference the learned kernel is
compared with; its rank and null space say what the pairs can determine.

Learning runs on the device mesh of `config.mesh` (`data` devices splitting
the pairs, `height` devices splitting the first spatial axis, an image's rows;
1 x 1 by default), with the same jitted step whatever its size;
`config.distributed` (see `experiments.runner.initialize_distributed`) spreads
it over several hosts.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time

import numpy as np

from experiments import kernel_data, plots, runner

EXPERIMENTS = ("document_example", "learn", "noise_sweep")
PADDINGS = ("valid", "same", "causal")
# The inputs of each spatial rank, and what `mesh.height` splits (their
# first spatial axis), in messages.
INPUTS = {1: "signals", 2: "images", 3: "volumes"}
FIRST_AXIS = {1: "signal length", 2: "image height", 3: "volume depth"}
PRECISIONS = (None, "default", "high", "highest")
IMPLS = ("lax", "einsum")
# Step counts are int32 inside optax (its schedules and counters).
MAX_STEPS = 2**31 - 1
# "Recovered to float32 precision": every entry within 8 float32 epsilons of
# the true kernel's largest entry (a few units in the last place).
FLOAT32_RTOL = 8 * float(np.finfo(np.float32).eps)

# The schema of each experiment is a config file: a config has exactly the
# fields of the one its `experiment` names.
SCHEMAS = {
    "document_example": "configs.document_example",
    "learn": "configs.learn_document_kernel",
    "noise_sweep": "configs.noise_sweep",
}


# --------------------------------------------------------------------- config


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)


def _positive_int(value, field: str) -> None:
    runner.require(_is_int(value) and value >= 1, field, value, "be an int >= 1")


def _nonneg(value, field: str) -> None:
    runner.require(_is_num(value) and value >= 0, field, value, "be a number >= 0")
    _finite(value, field)


def _finite(value, field: str) -> None:
    runner.require(math.isfinite(value), field, value, "be finite")


def _one_of(value, choices, field: str) -> None:
    runner.require(value in choices, field, value, f"be one of {tuple(choices)}")


def make_optimizer(config):
    """`jconv.learn.make_optimizer` from `config.optimizer`; a value it
    refuses is a `ConfigError` naming the config field, in jconv's words.
    Builds no arrays: `check_config` calls it before any work."""
    from jconv import learn

    opt = config.optimizer
    try:
        return learn.make_optimizer(
            opt.name,
            opt.learning_rate,
            momentum=opt.momentum,
            schedule=opt.schedule,
            total_steps=config.train.max_steps,
            warmup_steps=opt.warmup_steps,
            end_factor=opt.end_factor,
            memory_size=opt.memory_size,
        )
    except ValueError as e:
        # "`momentum` (=1.5) must ..." -> "`config.optimizer.momentum` (=1.5) ..."
        arg, _, rest = str(e).partition("` ")
        name = arg.rpartition("`")[2]
        if name not in opt:
            raise
        raise runner.ConfigError(f"`config.optimizer.{name}` {rest}") from None


def check_config(config) -> str:
    """Refuses unknown, missing or bad fields, naming them; returns the kind.

    Runs before anything is computed or written.
    """
    experiment = config.get("experiment")
    _one_of(experiment, EXPERIMENTS, "experiment")
    schema = importlib.import_module(SCHEMAS[experiment]).get_config()
    runner.check_fields(config, schema, complete=True)
    if experiment == "document_example":
        impls = tuple(config.impls)
        runner.require(impls, "impls", impls, "name at least one impl")
        for impl in impls:
            _one_of(impl, IMPLS, "impls")
        return experiment

    runner.require(
        _is_int(config.seed) and config.seed >= 0, "seed", config.seed, "be an int >= 0"
    )
    data, target, model = config.data, config.target, config.model
    _one_of(data.source, kernel_data.SOURCES, "data.source")
    rank = kernel_data.SOURCE_RANKS[data.source]
    _positive_int(data.image_size, "data.image_size")
    _positive_int(data.channels, "data.channels")
    if experiment == "learn":
        _positive_int(data.num_pairs, "data.num_pairs")
        _nonneg(data.noise_std, "data.noise_std")
        num_pairs = (data.num_pairs,)
    else:
        sweep = config.sweep
        stds, num_pairs = tuple(sweep.noise_stds), tuple(sweep.num_pairs)
        runner.require(stds, "sweep.noise_stds", stds, "name at least one level")
        for std in stds:
            _nonneg(std, "sweep.noise_stds")
        runner.require(num_pairs, "sweep.num_pairs", num_pairs, "be non-empty")
        for n in num_pairs:
            _positive_int(n, "sweep.num_pairs")
    if data.source == "document_image":
        runner.require(
            data.image_size == 4,
            "data.image_size",
            data.image_size,
            "be 4 for source 'document_image' (its 4x4 image)",
        )
        runner.require(
            data.channels == 1,
            "data.channels",
            data.channels,
            "be 1 for source 'document_image'",
        )
        runner.require(
            num_pairs == (1,),
            "data.num_pairs",
            num_pairs,
            "be 1 for source 'document_image' (one image)",
        )
    elif data.source in kernel_data.PHOTOS:
        c = kernel_data.PHOTOS[data.source]
        runner.require(
            data.channels == c,
            "data.channels",
            data.channels,
            f"be {c} for photo {data.source!r}",
        )

    kernels = tuple(target.kernels)
    runner.require(kernels, "target.kernels", kernels, "name at least one kernel")
    for name in kernels:
        _one_of(name, kernel_data.kernel_names(rank), "target.kernels")
    runner.require(
        len(set(kernels)) == len(kernels),
        "target.kernels",
        kernels,
        "not repeat a kernel",
    )
    if experiment == "noise_sweep":
        runner.require(
            len(kernels) == 1,
            "target.kernels",
            kernels,
            "name exactly one kernel for a noise sweep",
        )
    _positive_int(target.kernel_size, "target.kernel_size")
    _positive_int(target.channels_out, "target.channels_out")
    named = [k for k in kernels if k != kernel_data.RANDOM_KERNEL]
    if named:
        for field, value in (
            ("target.kernel_size", target.kernel_size),
            ("data.channels", data.channels),
            ("target.channels_out", target.channels_out),
        ):
            want = kernel_data.NAMED_KERNEL_SIZE if field == "target.kernel_size" else 1
            runner.require(
                value == want,
                field,
                value,
                f"be {want} for the named kernels {tuple(named)} "
                f"({kernel_data.kernel_extent(rank)}, one channel in and out)",
            )
    runner.require(
        target.kernel_size <= data.image_size,
        "target.kernel_size",
        target.kernel_size,
        f"not exceed data.image_size (={data.image_size}): the kernel would be "
        f"larger than the {INPUTS[rank]}",
    )

    runner.require(
        isinstance(model.use_bias, bool),
        "model.use_bias",
        model.use_bias,
        "be True or False",
    )
    _positive_int(model.strides, "model.strides")
    _one_of(model.padding, PADDINGS, "model.padding")
    _one_of(model.impl, IMPLS, "model.impl")
    _one_of(model.precision, PRECISIONS, "model.precision")

    opt, train = config.optimizer, config.train
    runner.require(
        _is_num(opt.learning_rate) and opt.learning_rate > 0,
        "optimizer.learning_rate",
        opt.learning_rate,
        "be a number > 0",
    )
    _finite(opt.learning_rate, "optimizer.learning_rate")
    runner.require(
        _is_int(opt.warmup_steps) and opt.warmup_steps >= 0,
        "optimizer.warmup_steps",
        opt.warmup_steps,
        "be an int >= 0",
    )
    if opt.schedule == "exponential":
        # jconv refuses an end_factor outside [0, 1] itself, in these words.
        runner.require(
            opt.end_factor != 0,
            "optimizer.end_factor",
            opt.end_factor,
            "be > 0 for the 'exponential' schedule",
        )
    _positive_int(opt.memory_size, "optimizer.memory_size")

    _positive_int(train.max_steps, "train.max_steps")
    _positive_int(train.chunk_steps, "train.chunk_steps")
    _positive_int(train.checkpoint_every, "train.checkpoint_every")
    for name in ("max_steps", "chunk_steps", "checkpoint_every"):
        runner.require(
            train[name] <= MAX_STEPS,
            f"train.{name}",
            train[name],
            f"be at most {MAX_STEPS} (optax counts steps in int32)",
        )
    runner.require(
        train.max_steps % train.chunk_steps == 0,
        "train.max_steps",
        train.max_steps,
        f"be a multiple of train.chunk_steps (={train.chunk_steps})",
    )
    runner.require(
        train.checkpoint_every % train.chunk_steps == 0,
        "train.checkpoint_every",
        train.checkpoint_every,
        f"be a multiple of train.chunk_steps (={train.chunk_steps})",
    )
    if opt.schedule == "warmup_cosine":
        runner.require(
            opt.warmup_steps < train.max_steps,
            "optimizer.warmup_steps",
            opt.warmup_steps,
            f"be < train.max_steps (={train.max_steps})",
        )
    for name in ("loss_rtol", "kernel_rtol", "grad_rtol"):
        _nonneg(train[name], f"train.{name}")
    make_optimizer(config)  # checks the name, momentum, schedule, end_factor
    check_mesh(config, num_pairs=max(num_pairs))
    return experiment


def _output_height(config) -> int:
    """The output's size along the first spatial axis (every axis has it)."""
    from jconv import resolve_padding

    size, k, s = config.data.image_size, config.target.kernel_size, config.model.strides
    rank = kernel_data.SOURCE_RANKS[config.data.source]
    (top, bottom), *_ = resolve_padding(
        (size,) * rank, (k,) * rank, (s,) * rank, (1,) * rank, config.model.padding
    )
    return (size + top + bottom - k) // s + 1


def check_mesh(config, *, num_pairs: int) -> dict[str, int]:
    """`config.mesh` resolved against the devices: `{"data": n, "height": m}`.

    Refuses, naming the field: a size that is not an int >= 1 or -1, more
    devices than JAX sees (with several processes: not all of them), a data
    axis that does not divide the `num_pairs` pairs, a height axis that does
    not divide the input's or output's first spatial axis (an image's
    height). Sizes given as numbers are checked before JAX is asked for its
    devices.
    """
    height_in, height_out = config.data.image_size, _output_height(config)
    axis_words = FIRST_AXIS[kernel_data.SOURCE_RANKS[config.data.source]]
    batch = (
        "data.num_pairs"
        if config.experiment == "learn"
        else "the largest of sweep.num_pairs"
    )

    def divides(sizes):
        for axis, size in sizes.items():
            given = config.mesh[axis]
            shown = "" if given == size else f" ({size} devices)"
            if axis == "data":
                runner.require(
                    num_pairs % size == 0,
                    "mesh.data",
                    given,
                    f"divide the batch{shown}: {batch} (={num_pairs}) pairs are "
                    "split evenly over the data axis",
                )
            elif axis == "height":
                runner.require(
                    height_in % size == 0 and height_out % size == 0,
                    "mesh.height",
                    given,
                    f"divide the {axis_words}{shown}: the input's, data.image_size "
                    f"(={height_in}), and the output's (={height_out}, "
                    f"{config.model.padding!r} padding, stride {config.model.strides})",
                )

    fixed = runner.check_mesh_sizes(config.mesh, field="mesh")
    divides({axis: size for axis, size in fixed.items() if size != -1})
    sizes = runner.mesh_sizes(config.mesh, field="mesh")
    divides(sizes)
    return sizes


# ---------------------------------------------------------------------- setup


@dataclasses.dataclass
class Setup:
    """What a learning run trains: stacked problems and how.

    `problems` is a `jconv.learn.Problem` of NumPy arrays with a leading axis of
    `len(names)` problems; `noise_stds`/`num_pairs` give each one's noise level
    and number of pairs (the rest have weight 0).
    """

    names: list[str]
    model: object  # jconv.learn.ConvModel
    problems: object  # jconv.learn.Problem
    noise_stds: list[float]
    num_pairs: list[int]


def build_setup(config) -> Setup:
    """Inputs (signals, images or volumes), true kernels and targets for every
    problem of a config."""
    import jax
    import jax.numpy as jnp

    from jconv import learn

    data, target, m = config.data, config.target, config.model
    if config.experiment == "noise_sweep":
        grid = [(s, n) for n in config.sweep.num_pairs for s in config.sweep.noise_stds]
        kernel_names = [target.kernels[0]] * len(grid)
        names = [f"noise={s:g},pairs={n}" for s, n in grid]
    else:
        grid = [(data.noise_std, data.num_pairs)] * len(target.kernels)
        kernel_names = list(target.kernels)
        names = list(target.kernels)
    max_pairs = max(n for _, n in grid)
    x = kernel_data.input_images(
        data.source,
        num_images=max_pairs,
        image_size=data.image_size,
        channels=data.channels,
        seed=config.seed,
    )
    channels_out = 1 if kernel_names[0] != "random" else target.channels_out
    rank = kernel_data.SOURCE_RANKS[data.source]
    model = learn.ConvModel(
        kernel_shape=(*(target.kernel_size,) * rank, data.channels, channels_out),
        use_bias=m.use_bias,
        strides=m.strides,
        padding=m.padding,
        impl=m.impl,
        precision=m.precision,
    )
    apply = jax.jit(model.apply)
    problems = []
    for g, ((std, n), kname) in enumerate(zip(grid, kernel_names)):
        true = {
            "kernel": kernel_data.true_kernel(
                kname,
                kernel_size=target.kernel_size,
                channels_in=data.channels,
                channels_out=channels_out,
                seed=config.seed,
                rank=rank,
            )
        }
        if m.use_bias:
            true["bias"] = kernel_data.true_bias(channels_out, seed=config.seed)
        y = np.asarray(apply({k: jnp.asarray(v) for k, v in true.items()}, x))
        y = y + kernel_data.target_noise(y.shape, std=std, seed=config.seed, stream=g)
        weight = (np.arange(max_pairs) < n).astype(np.float32)
        problems.append(learn.Problem(x, y, weight, true))
    stacked = jax.tree.map(lambda *a: np.stack(a), *problems)
    return Setup(
        names=names,
        model=model,
        problems=stacked,
        noise_stds=[float(s) for s, _ in grid],
        num_pairs=[int(n) for _, n in grid],
    )


def least_squares(setup: Setup, g: int) -> dict:
    """The closed-form reference for problem `g`: patch matrix rank, the
    minimum-norm least-squares kernel (and bias), and the null space."""
    from jconv import learn

    model, p = setup.model, setup.problems
    n = setup.num_pairs[g]
    *kernel_size, c_in, c_out = model.kernel_shape
    a = learn.patch_matrix(
        p.x[g, :n],
        tuple(kernel_size),
        strides=model.strides,
        padding=model.padding,
        bias=model.use_bias,
    )
    result = learn.lstsq(a, p.y[g, :n].reshape(-1, c_out))
    sol = result.solution
    out = {
        "patch_matrix_shape": list(a.shape),
        "patch_matrix_rank": result.rank,
        "unknowns": a.shape[1],
        "null_space_dimension": a.shape[1] - result.rank,
        "lstsq_kernel": sol[: math.prod(kernel_size) * c_in].reshape(
            model.kernel_shape
        ),
        "null_space": result.null_space,
        "patch_matrix": a,
        "singular_values": result.singular_values,
    }
    if model.use_bias:
        out["lstsq_bias"] = sol[-1]
    return out


# ------------------------------------------------------------------- training


@dataclasses.dataclass
class TrainResult:
    params: dict  # stacked NumPy arrays
    steps: int
    converged: bool
    wall_seconds: float
    history: list[dict]  # metrics rows
    mesh: dict  # axis name -> devices
    devices: int  # devices the pairs were spread over


def _row(step, metrics, names, wall) -> dict:
    m = {k: np.asarray(v, np.float64) for k, v in metrics._asdict().items()}
    row = {
        "step": int(step),
        "loss": float(m["loss"].max()),
        "kernel_max_abs_error": float(m["kernel_max_abs_error"].max()),
        "grad_norm": float(m["grad_norm"].max()),
        "wall_seconds": round(wall, 3),
    }
    if len(names) > 1:
        row["problems"] = {
            name: {
                "loss": float(m["loss"][g]),
                "kernel_max_abs_error": float(m["kernel_max_abs_error"][g]),
                "grad_norm": float(m["grad_norm"][g]),
            }
            for g, name in enumerate(names)
        }
    return row


def train(
    setup: Setup, config, workdir: runner.Workdir, *, quiet: bool = False
) -> TrainResult:
    """Gradient descent from zeros, one jitted `lax.scan` per chunk of steps.

    After every chunk: the NaN guard, one metrics row, a checkpoint every
    `train.checkpoint_every` steps, and the stopping test (per problem, any of
    the loss, kernel-error or gradient-norm tolerances; all problems must
    pass). An unfinished workdir resumes from its last checkpoint.
    """
    from jax.sharding import PartitionSpec

    from jconv import learn

    opt_cfg, tcfg = config.optimizer, config.train
    optimizer = make_optimizer(config)
    sizes = check_mesh(config, num_pairs=max(setup.num_pairs))
    mesh = runner.make_mesh(sizes)
    replicated = PartitionSpec()
    problems = runner.place(setup.problems, mesh, learn.problem_specs(mesh.axis_names))
    names, model = setup.names, setup.model
    num = len(names)
    init = runner.place(learn.init_state(model, optimizer, num), mesh, replicated)
    wall_seconds = lambda t: runner.place(np.float32(t), mesh, replicated)
    ckpt = workdir.checkpoints(save_every=tcfg.checkpoint_every)
    saved = {"state": init, "wall_seconds": wall_seconds(0.0)}
    step, saved = ckpt.restore_latest(saved)
    state, wall0 = saved["state"], float(runner.fetch(saved["wall_seconds"]))
    chunk = learn.make_train_chunk(model, optimizer, tcfg.chunk_steps)

    start = runner.fetch(learn.evaluate(model, init.params, problems))
    loss0 = np.asarray(start.loss)
    grad0 = np.asarray(start.grad_norm)
    true_kernels = setup.problems.true_params["kernel"]
    scale = np.max(np.abs(true_kernels), axis=tuple(range(1, true_kernels.ndim)))

    def done(m) -> bool:
        ok = np.zeros(num, bool)
        if tcfg.loss_rtol > 0:
            ok |= np.asarray(m.loss) <= tcfg.loss_rtol * loss0
        if tcfg.kernel_rtol > 0:
            ok |= np.asarray(m.kernel_max_abs_error) <= tcfg.kernel_rtol * scale
        if tcfg.grad_rtol > 0:
            ok |= np.asarray(m.grad_norm) <= tcfg.grad_rtol * grad0
        return bool(ok.all())

    t0 = time.perf_counter()
    wall = lambda: wall0 + time.perf_counter() - t0
    hint = (
        "try a smaller learning rate, e.g. "
        f"--config.optimizer.learning_rate={opt_cfg.learning_rate / 10:g}"
    )
    metrics_now = (
        start
        if step == 0
        else runner.fetch(learn.evaluate(model, state.params, problems))
    )
    converged = done(metrics_now)
    ckpt.last_loss = float(np.max(metrics_now.loss))
    with (
        workdir.metrics(resume_step=step) as log,
        runner.progress(tcfg.max_steps, initial=step, quiet=quiet) as bar,
    ):
        if step == 0:
            log.write(**_row(0, start, names, 0.0))
        while step < tcfg.max_steps and not converged:
            state, metrics_now, losses = chunk(state, problems)
            metrics_now, losses = runner.fetch((metrics_now, losses))
            finite = np.isfinite(losses).all(axis=1)
            if not finite.all():  # name the first step whose loss is not finite
                first = int(np.argmin(finite))
                runner.check_finite(
                    step + first,
                    loss=np.max(losses[first]),
                    checkpoints=ckpt,
                    hint=hint,
                )
            step += tcfg.chunk_steps
            runner.check_finite(
                step,
                loss=np.max(metrics_now.loss),
                grad_norm=np.max(metrics_now.grad_norm),
                checkpoints=ckpt,
                hint=hint,
            )
            log.write(**_row(step, metrics_now, names, wall()))
            ckpt.save(
                step,
                {"state": state, "wall_seconds": wall_seconds(wall())},
                loss=np.max(metrics_now.loss),
            )
            converged = done(metrics_now)
            bar.update(tcfg.chunk_steps)
        history = log.rows
    ckpt.save(
        step,
        {"state": state, "wall_seconds": wall_seconds(wall())},
        force=True,
        loss=np.max(metrics_now.loss),
    )
    ckpt.close()
    params = runner.fetch(state.params)
    devices = len(problems.x.sharding.device_set)
    return TrainResult(params, step, converged, wall(), history, sizes, devices)


# -------------------------------------------------------------------- summary


def _squeeze(kernel: np.ndarray) -> np.ndarray:
    """`(*K, 1, 1)` -> `(*K)` for reading (`(KH, KW)` for a 2-D kernel);
    other shapes unchanged."""
    return kernel[..., 0, 0] if kernel.shape[-2:] == (1, 1) else kernel


def _ulps(error: float, scale: float) -> float:
    return float(error / np.spacing(np.float32(max(scale, 1e-30))))


def problem_record(setup: Setup, result: TrainResult, g: int) -> dict:
    """Everything known about problem `g`: true, learned and least-squares
    kernels, their errors, and what the pairs can and cannot determine."""
    import jax.numpy as jnp

    from jconv import learn

    model, p = setup.model, setup.problems
    true_k = p.true_params["kernel"][g].astype(np.float64)
    learned = {k: v[g] for k, v in result.params.items()}
    ls = least_squares(setup, g)
    err = float(np.max(np.abs(learned["kernel"] - true_k)))
    scale = float(np.max(np.abs(true_k)))
    one = learn.Problem(*(np.asarray(a[g]) for a in p[:3]), {"kernel": true_k})
    loss = float(
        learn.loss_fn(model, {k: jnp.asarray(v) for k, v in learned.items()}, one)
    )
    flat_true = true_k.reshape(-1, true_k.shape[-1])
    if model.use_bias:
        flat_true = np.concatenate([flat_true, p.true_params["bias"][g][None]])
    # The part of the true parameters no data can reveal: their projection on
    # the patch matrix's null space.
    null = ls["null_space"]
    unlearnable = null @ (null.T @ flat_true)
    flat_learned = learned["kernel"].reshape(-1, true_k.shape[-1]).astype(np.float64)
    if model.use_bias:
        flat_learned = np.concatenate([flat_learned, learned["bias"][None]])
    targets = p.y[g, : setup.num_pairs[g]].reshape(-1, true_k.shape[-1])
    record = {
        "name": setup.names[g],
        "noise_std": setup.noise_stds[g],
        "num_pairs": setup.num_pairs[g],
        "true_kernel": _squeeze(true_k),
        "learned_kernel": _squeeze(learned["kernel"]),
        "kernel_max_abs_error": err,
        "kernel_error_float32_ulps": _ulps(err, scale),
        "recovered_to_float32": err <= FLOAT32_RTOL * scale,
        "final_loss": loss,
        "lstsq_kernel": _squeeze(ls["lstsq_kernel"]),
        "lstsq_kernel_max_abs_error": float(
            np.max(np.abs(ls["lstsq_kernel"] - true_k))
        ),
        "learned_minus_lstsq_max_abs": float(
            np.max(np.abs(learned["kernel"] - ls["lstsq_kernel"]))
        ),
        "patch_matrix_shape": ls["patch_matrix_shape"],
        "patch_matrix_rank": ls["patch_matrix_rank"],
        "unknowns": ls["unknowns"],
        "null_space_dimension": ls["null_space_dimension"],
        "unlearnable_part_norm": float(np.linalg.norm(unlearnable)),
        "learned_outputs_max_abs_residual": float(
            np.max(np.abs(ls["patch_matrix"] @ flat_learned - targets))
        ),
    }
    if ls["null_space_dimension"]:
        record["null_space_basis"] = ls["null_space"].T
        n_k = int(np.prod(true_k.shape[:-1]))
        record["unlearnable_part"] = _squeeze(unlearnable[:n_k].reshape(true_k.shape))
    if model.use_bias:
        true_b = p.true_params["bias"][g]
        record.update(
            true_bias=true_b,
            learned_bias=learned["bias"],
            bias_max_abs_error=float(np.max(np.abs(learned["bias"] - true_b))),
            lstsq_bias=ls["lstsq_bias"],
            lstsq_bias_max_abs_error=float(np.max(np.abs(ls["lstsq_bias"] - true_b))),
        )
    return record


def summarize(setup: Setup, result: TrainResult, config) -> dict:
    """`summary.json`: per-problem records, and the keys every run has.

    With one problem the kernel keys hold arrays; with several, dicts keyed by
    problem name, and the error/loss keys the worst problem's value.
    """
    records = [problem_record(setup, result, g) for g in range(len(setup.names))]

    def per(key):
        if len(records) == 1:
            return records[0][key]
        return {r["name"]: r[key] for r in records}

    return {
        "experiment": config.experiment,
        "spatial_rank": setup.model.rank,
        "true_kernel": per("true_kernel"),
        "learned_kernel": per("learned_kernel"),
        "kernel_max_abs_error": max(r["kernel_max_abs_error"] for r in records),
        "recovered_to_float32": all(r["recovered_to_float32"] for r in records),
        "final_loss": max(r["final_loss"] for r in records),
        "steps": result.steps,
        "wall_seconds": round(result.wall_seconds, 3),
        "converged": result.converged,
        "mesh": result.mesh,
        "devices": result.devices,
        "lstsq_kernel": per("lstsq_kernel"),
        "lstsq_kernel_max_abs_error": max(
            r["lstsq_kernel_max_abs_error"] for r in records
        ),
        "patch_matrix_rank": min(r["patch_matrix_rank"] for r in records),
        "unknowns": records[0]["unknowns"],
        "problems": records,
    }


# ---------------------------------------------------------------------- plots


def _kernel_matrix(kernel: np.ndarray, bias=None) -> np.ndarray:
    """A kernel as a 2D array for a heatmap: `(KH, KW)` as is; otherwise
    (`(*K, C_in, C_out)` of any rank) rows are output channels, columns
    `(*k, c_in)` then the bias."""
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim == 2:
        return kernel
    m = kernel.reshape(-1, kernel.shape[-1]).T
    return m if bias is None else np.concatenate([m, np.asarray(bias)[:, None]], 1)


def make_plots(setup: Setup, result: TrainResult, summary: dict, out) -> list[str]:
    """Writes the PNGs of a learning run into `out`; returns their names."""
    import jax.numpy as jnp

    names = []
    history = result.history
    steps = [r["step"] for r in history]
    many = len(setup.names) > 6
    for key, file, label in (
        ("loss", "loss.png", "loss (mean squared error)"),
        ("kernel_max_abs_error", "kernel_error.png", "max |learned - true| kernel"),
    ):
        if len(setup.names) == 1 or many:
            series = {("worst problem" if many else key): [r[key] for r in history]}
        else:
            series = {n: [r["problems"][n][key] for r in history] for n in setup.names}
        plots.plot_curves(out / file, steps, series, ylabel=label, title=label)
        names.append(file)

    if summary["experiment"] == "noise_sweep":
        table = summary["sweep"]
        stds = sorted({row["noise_std"] for row in table})
        series, styles = {}, {}
        for n in sorted({row["num_pairs"] for row in table}):
            rows = {r["noise_std"]: r for r in table if r["num_pairs"] == n}
            series[f"gradient descent, {n} pairs"] = [
                rows[s]["kernel_max_abs_error"] for s in stds
            ]
            series[f"least squares, {n} pairs"] = [
                rows[s]["lstsq_kernel_max_abs_error"] for s in stds
            ]
            styles[f"gradient descent, {n} pairs"] = "o-"
            styles[f"least squares, {n} pairs"] = "x--"
        note = " (noise 0 off the log axis)" if 0 in stds else ""
        plots.plot_curves(
            out / "noise_sweep.png",
            stds,
            series,
            logx=True,
            styles=styles,
            xlabel="target noise std",
            ylabel="max |kernel - true|",
            title="kernel error vs noise and pairs" + note,
        )
        return [*names, "noise_sweep.png"]

    model, p = setup.model, setup.problems
    for g, record in enumerate(summary["problems"]):
        if many:
            break
        tag = record["name"]
        names.append(_plot_kernel(out / f"kernel_{tag}.png", record, model.rank))
        params = {k: jnp.asarray(v[g]) for k, v in result.params.items()}
        x = p.x[g, :1]
        pred = np.asarray(model.apply(params, jnp.asarray(x)))[0, ..., 0]
        target = p.y[g, 0, ..., 0]
        residual = target - pred
        worst = f"max |.| {np.max(np.abs(residual)):.2g}"
        title = f"kernel {tag!r}, first pair"
        if model.rank == 1:
            file = f"signals_{tag}.png"
            plots.plot_panels(
                out / file,
                {
                    "input (channel 0)": {"input": x[0, :, 0]},
                    "output (channel 0)": {"target": target, "prediction": pred},
                    f"target - prediction ({worst})": {"residual": residual},
                },
                styles={"prediction": "--"},
                xlabel="sample",
                title=title,
            )
        elif model.rank == 3:
            # The middle depth slice of each volume.
            mid = lambda v: v[v.shape[0] // 2]
            file = f"volumes_{tag}.png"
            plots.plot_images(
                out / file,
                {
                    "input, middle slice": mid(x[0]),
                    "target (channel 0)": mid(target),
                    "prediction (channel 0)": mid(pred),
                    f"target - prediction ({worst})": mid(residual),
                },
                title=title + ", middle depth slices",
            )
        else:
            file = f"images_{tag}.png"
            plots.plot_images(
                out / file,
                {
                    "input": x[0],
                    "target (channel 0)": target,
                    "prediction (channel 0)": pred,
                    f"target - prediction ({worst})": residual,
                },
                title=title,
            )
        names.append(file)
    return names


def _plot_kernel(path, record: dict, rank: int) -> str:
    """The true, learned and least-squares kernels of a problem and the
    learned one's error, drawn as suits the rank: a single-channel 1-D kernel
    as its taps, a single-channel 3-D kernel slice by slice, every other one
    as a heatmap. Returns the file's name."""
    kernels = {
        "true": np.asarray(record["true_kernel"], np.float64),
        "learned": np.asarray(record["learned_kernel"], np.float64),
        "least squares": np.asarray(record["lstsq_kernel"], np.float64),
    }
    title = f"kernel {record['name']!r}: error {record['kernel_max_abs_error']:.2g}"
    one_channel = kernels["true"].ndim == rank  # `_squeeze`d
    if one_channel and rank == 1:
        error = kernels["learned"] - kernels["true"]
        plots.plot_panels(
            path,
            {"taps": kernels, "learned - true": {"learned - true": error}},
            styles={"true": "o-", "learned": "x--", "least squares": "+:"},
            xlabel="tap",
            title=title,
        )
    elif one_channel and rank == 3:
        kernels["learned - true"] = kernels["learned"] - kernels["true"]
        plots.plot_volume_slices(path, kernels, title=title)
    else:
        bias = {
            "true": record.get("true_bias"),
            "learned": record.get("learned_bias"),
            "least squares": record.get("lstsq_bias"),
        }
        panels = {k: _kernel_matrix(v, bias[k]) for k, v in kernels.items()}
        panels["learned - true"] = panels["learned"] - panels["true"]
        plots.plot_heatmaps(path, panels, share_scale=False, title=title)
    return path.name


# ----------------------------------------------------------------------- text


def _array(a) -> str:
    return np.array2string(
        np.asarray(a), precision=6, suppress_small=False, max_line_width=100
    )


def report(summary: dict, workdir, files: list[str]) -> str:
    """The text printed at the end of a learning run."""
    lines = []
    for r in summary["problems"]:
        if summary["experiment"] == "noise_sweep":
            continue
        lines += [
            f"== kernel {r['name']!r}: {r['num_pairs']} pair(s), noise std "
            f"{r['noise_std']:g}",
            "learned kernel:",
            _array(r["learned_kernel"]),
        ]
        if np.ndim(r["true_kernel"]) == summary["spatial_rank"]:  # one channel
            lines += ["true kernel:", _array(r["true_kernel"])]
        err, ulps = r["kernel_max_abs_error"], r["kernel_error_float32_ulps"]
        if r["recovered_to_float32"]:
            lines.append(
                f"RECOVERED to float32 precision: max |learned - true| = {err:.3g}"
                f" ({ulps:.1f} float32 ulp of the largest entry)"
            )
        else:
            lines.append(
                f"not recovered to float32 precision: max |learned - true| = "
                f"{err:.3g} ({ulps:.3g} ulp of the largest entry)"
            )
        rank, n = r["patch_matrix_rank"], r["unknowns"]
        eqs = r["patch_matrix_shape"][0]
        lines.append(
            f"least squares: patch matrix {eqs} equations x {n} unknowns, rank "
            f"{rank}; max |lstsq - true| = {r['lstsq_kernel_max_abs_error']:.3g}, "
            f"max |learned - lstsq| = {r['learned_minus_lstsq_max_abs']:.3g}"
        )
        if rank < n:
            lines += [
                f"The pairs determine only {rank} of the {n} directions of the "
                f"parameters; {n - rank} lie in the null space of the patch "
                "matrix, where any change leaves every output unchanged.",
                "Gradient descent from zeros never leaves the row space, so it "
                "converges to the minimum-norm least-squares solution: it "
                "reproduces the outputs (max residual "
                f"{r['learned_outputs_max_abs_residual']:.3g}) but misses the "
                f"part of the true kernel in the null space (norm "
                f"{r['unlearnable_part_norm']:.3g}):",
                _array(r["unlearnable_part"]),
                "No method can learn that part from these pairs.",
            ]
        if "true_bias" in r:
            lines.append(
                f"bias: true {_array(r['true_bias'])}, learned "
                f"{_array(r['learned_bias'])}, max error "
                f"{r['bias_max_abs_error']:.3g}"
            )
    if summary["experiment"] == "noise_sweep":
        lines.append("noise std  pairs  max|GD - true|  max|lstsq - true|")
        for row in summary["sweep"]:
            lines.append(
                f"{row['noise_std']:9g}  {row['num_pairs']:5d}  "
                f"{row['kernel_max_abs_error']:14.3g}  "
                f"{row['lstsq_kernel_max_abs_error']:17.3g}"
            )
    stop = "tolerance reached" if summary["converged"] else "step budget"
    where = ""
    if summary.get("devices", 1) > 1:
        axes = ", ".join(f"{k}={v}" for k, v in summary["mesh"].items())
        where = f" on {summary['devices']} devices (mesh {axes})"
    lines += [
        f"{summary['steps']} steps ({stop}){where}, {summary['wall_seconds']:.1f} s, "
        f"final loss {summary['final_loss']:.3g}",
        f"plots: {', '.join(str(workdir / p) for p in files)}",
        f"summary: {workdir / runner.SUMMARY_JSON}",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------- runs


def run_document_example(config, wd: runner.Workdir) -> dict:
    """The document's worked example into the workdir `wd`, and printed."""
    from jconv import document

    impls = tuple(config.impls)
    results = document.worked_example(impls)
    claimed = np.asarray(document.CLAIMED_VALID, np.float64)
    valid = results[impls[0], "valid"]
    summary = {
        "experiment": "document_example",
        "image": document.IMAGE,
        "kernel": document.KERNEL,
        "outputs": {f"{i}/{p}": v for (i, p), v in results.items()},
        "claimed_valid": claimed,
        "valid_matches_claim": valid == claimed,
        "impls_max_abs_difference": {
            p: float(
                max(np.max(np.abs(results[i, p] - results[impls[0], p])) for i in impls)
            )
            for p in ("valid", "same")  # the document's two
        },
        "errata": document.ERRATA,
    }
    files = ["document_example.png", "document_same.png"]
    plots.plot_heatmaps(
        wd.path / files[0],
        {
            "image": document.IMAGE,
            "kernel": document.KERNEL,
            f"'valid' ({impls[0]})": valid,
            "'valid' as the document claims": claimed,
        },
        fmt="{:.0f}",
        share_scale=False,
        title="the document's worked example",
    )
    plots.plot_heatmaps(
        wd.path / files[1],
        {f"'same' ({i})": results[i, "same"] for i in impls},
        fmt="{:.0f}",
        title="'same' padding: the output keeps the 4x4 size",
    )
    summary["plots"] = files
    wd.write_summary(summary)
    if wd.writer:
        print(document.report(impls))
        print(f"\nplots: {', '.join(str(wd.path / p) for p in files)}")
    return summary


def run(
    config, workdir, *, overwrite=False, quiet=False, allow_optimizer_change=False
) -> dict:
    """`python -m experiments.learn_kernel`: checks, runs, writes, prints.

    `overwrite` replaces a finished run in `workdir`; `allow_optimizer_change`
    resumes an unfinished one with other optimizer settings; `quiet` hides
    the progress bar (README, "Reliability").
    """
    kind = check_config(config)
    setup = None
    if kind != "document_example":
        # The data first: data too large to allocate is refused before the
        # workdir exists.
        try:
            setup = build_setup(config)
        except MemoryError as e:
            raise runner.ConfigError(
                f"`config.data.image_size` (={config.data.image_size!r}) is too "
                f"large: the pairs' images and targets do not fit in memory ({e})"
            ) from None
    wd = runner.prepare_workdir(
        workdir,
        config,
        overwrite=overwrite,
        allow_optimizer_change=allow_optimizer_change,
    )
    if setup is None:
        return run_document_example(config, wd)
    result = train(setup, config, wd, quiet=quiet)
    summary = summarize(setup, result, config)
    if kind == "noise_sweep":
        summary["sweep"] = [
            {
                k: r[k]
                for k in (
                    "noise_std",
                    "num_pairs",
                    "kernel_max_abs_error",
                    "lstsq_kernel_max_abs_error",
                    "patch_matrix_rank",
                )
            }
            for r in summary["problems"]
        ]
    # Only process 0 of a multi-process run writes (and plots, and prints).
    files = make_plots(setup, result, summary, wd.path) if wd.writer else []
    summary["plots"] = files
    wd.write_summary(summary)
    if wd.writer:
        print(report(summary, wd.path, files))
    return summary
