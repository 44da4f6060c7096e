"""Several devices, several processes: `jax.distributed` set-up, a device
mesh from a config, host arrays onto it and back."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping

import numpy as np

from experiments._errors import ConfigError, check_fields, require

# Set to 1 (or true) to call jax.distributed.initialize() before the run.
DISTRIBUTED_ENV = "JCONV_DISTRIBUTED"
# `config.distributed`: how a run is launched on several processes.
DISTRIBUTED_FIELDS = dict.fromkeys(
    ("initialize", "coordinator_address", "num_processes", "process_id")
)


def process_count() -> int:
    # Never the first to touch JAX: a script that has not imported it (the
    # benchmark's parent process) must not start a backend here.
    jax = sys.modules.get("jax")
    if jax is None or not jax.distributed.is_initialized():
        return 1
    return jax.process_count()


def is_main_process() -> bool:
    """True unless this is a process other than 0 of a `jax.distributed` run.

    Only the main process writes files (metrics, summary, plots) and prints.
    """
    if process_count() == 1:
        return True
    import jax

    return jax.process_index() == 0


_TRUE, _FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


def check_distributed(config) -> dict:
    """`config.distributed` (`{}` if the config has none), checked, naming
    the fields.

    Fields: `initialize` (bool), `coordinator_address` (`"host:port"` or
    None), `num_processes` (int >= 1 or None), `process_id` (int >= 0 or
    None). None leaves the value to JAX's auto-detection.
    """
    dist = config.get("distributed") if hasattr(config, "get") else None
    if dist is None:
        return {}
    check_fields(dist, DISTRIBUTED_FIELDS, prefix="distributed.")
    init = dist.get("initialize", False)
    require(isinstance(init, bool), "distributed.initialize", init, "be True or False")
    address = dist.get("coordinator_address")
    require(
        address is None or (isinstance(address, str) and ":" in address),
        "distributed.coordinator_address",
        address,
        "be 'host:port' (process 0's address) or None (auto-detect)",
    )
    num, pid = dist.get("num_processes"), dist.get("process_id")
    for field, value, low in (("num_processes", num, 1), ("process_id", pid, 0)):
        require(
            value is None
            or (
                isinstance(value, int) and not isinstance(value, bool) and value >= low
            ),
            f"distributed.{field}",
            value,
            f"be an int >= {low} or None (auto-detect)",
        )
    if num is not None and pid is not None:
        require(
            pid < num,
            "distributed.process_id",
            pid,
            f"be < distributed.num_processes (={num})",
        )
    return dict(dist.items())


def initialize_distributed(config=None, environ: Mapping[str, str] | None = None):
    """Calls `jax.distributed.initialize(...)` if the config or environment asks.

    Asked by `config.distributed.initialize = True`, or by the environment
    variable `JCONV_DISTRIBUTED=1` (also `true`, `yes`). The call passes the
    config's `coordinator_address`, `num_processes` and `process_id` that are
    set (not None); JAX finds the others itself (SLURM, Open MPI, Cloud TPU,
    or its variables `JAX_COORDINATOR_ADDRESS`, ...). Must run before anything
    touches a JAX device; `main` calls it right after parsing the flags. Does
    nothing if `jax.distributed` is already initialised.

    Returns:
      The keyword arguments passed to `jax.distributed.initialize`, or None
      if it was not called.

    Raises:
      ConfigError: a bad `config.distributed` field, or a bad value of
        `JCONV_DISTRIBUTED`, named.
    """
    environ = os.environ if environ is None else environ
    dist = check_distributed(config)
    flag = environ.get(DISTRIBUTED_ENV, "").strip().lower()
    if flag not in _TRUE + _FALSE:
        raise ConfigError(
            f"environment variable {DISTRIBUTED_ENV} (={environ[DISTRIBUTED_ENV]!r}) "
            "must be 1 (initialise jax.distributed) or 0"
        )
    if not (flag in _TRUE or dist.get("initialize", False)):
        return None
    kwargs = {k: v for k, v in dist.items() if k != "initialize" and v is not None}
    import jax

    if jax.distributed.is_initialized():
        return None
    jax.distributed.initialize(**kwargs)
    return kwargs


def check_mesh_sizes(mesh_config, *, field: str = "mesh") -> dict[str, int]:
    """`{axis name: size}` checked without asking for devices: every size an
    int >= 1 or -1 (at most one -1). Raises `ConfigError` naming the field."""
    sizes = dict(mesh_config.items())
    require(sizes, field, sizes, "name at least one axis")
    for axis, size in sizes.items():
        require(
            isinstance(size, int) and not isinstance(size, bool)
            and (size >= 1 or size == -1),
            f"{field}.{axis}",
            size,
            "be an int >= 1, or -1 for the devices the other axes leave",
        )  # fmt: skip
    free = [axis for axis, size in sizes.items() if size == -1]
    require(len(free) <= 1, field, sizes, "have at most one axis of size -1")
    return sizes


def mesh_sizes(
    mesh_config, *, field: str = "mesh", device_count: int | None = None
) -> dict[str, int]:
    """`{axis name: size}` from a mesh sub-config, checked against the devices.

    One size may be -1: the devices the other axes leave. The product of the
    sizes is the number of devices used (the first ones, in `jax.devices()`
    order); it may be fewer than JAX sees in one process, but with several
    processes it must be all of them (every process takes part in each step).

    Args:
      mesh_config: `ConfigDict` or mapping, axis name -> int.
      field: its dotted path in the root config, for messages.
      device_count: the devices to fit (default `jax.device_count()`, which
        starts JAX's backend: call after `initialize_distributed`).

    Raises:
      ConfigError: naming `config.<field>.<axis>` or `config.<field>`.

    Example:
      >>> mesh_sizes({"data": -1, "height": 2}, device_count=8)
      {'data': 4, 'height': 2}
      >>> mesh_sizes({"data": 16}, device_count=8)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      experiments._errors.ConfigError: `config.mesh` (={'data': 16}) must use at ...
    """
    sizes = check_mesh_sizes(mesh_config, field=field)
    if device_count is None:
        import jax

        device_count = jax.device_count()
    for axis in [axis for axis, size in sizes.items() if size == -1]:
        rest = -math.prod(sizes.values())  # the other axes' devices
        require(
            device_count % rest == 0,
            f"{field}.{axis}",
            -1,
            f"leave a whole number of devices: {device_count} devices are not a "
            f"multiple of the other axes' {rest}",
        )
        sizes[axis] = device_count // rest
    used, given = math.prod(sizes.values()), dict(mesh_config.items())
    processes = process_count()
    if processes > 1:
        require(
            used == device_count,
            field,
            given,
            f"use all {device_count} devices of the {processes} processes (the "
            f"product of its sizes is {used}); -1 on one axis takes the rest",
        )
    require(
        used <= device_count,
        field,
        given,
        f"use at most the devices JAX sees ({device_count}; the product of its "
        f"sizes is {used})",
    )
    return sizes


def make_mesh(sizes: Mapping[str, int]):
    """A `jax.sharding.Mesh` over the first `prod(sizes)` devices.

    `sizes` as returned by `mesh_sizes` (no -1). The axes are `Auto`: XLA
    decides how each jitted computation is split, from its inputs' shardings.
    """
    import jax

    devices = jax.devices()[: math.prod(sizes.values())]
    return jax.sharding.Mesh(
        np.array(devices).reshape(tuple(sizes.values())),
        tuple(sizes),
        axis_types=(jax.sharding.AxisType.Auto,) * len(sizes),
    )


def place(tree, mesh, specs):
    """Host arrays onto `mesh`: each leaf as a global `jax.Array` with
    `NamedSharding(mesh, spec)`.

    `specs` is a `PartitionSpec` for every leaf, or a tree of them shaped like
    a prefix of `tree`. Every process must pass the same values: each one
    keeps only the shards of its own devices (`jax.make_array_from_callback`),
    so this works unchanged on one process or several.
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    def put(spec, sub):
        sharding = NamedSharding(mesh, spec)

        def one(leaf):
            host = np.asarray(leaf)
            return jax.make_array_from_callback(
                host.shape, sharding, lambda index: host[index]
            )

        return jax.tree.map(one, sub)

    is_spec = lambda x: isinstance(x, PartitionSpec)
    return jax.tree.map(put, specs, tree, is_leaf=is_spec)


def fetch(tree):
    """Every leaf of `tree` as a NumPy array, wherever its shards are.

    An array split over the devices of several processes is gathered
    (`multihost_utils.process_allgather`, a collective: every process must
    call `fetch` at the same point).
    """
    import jax

    def one(leaf):
        if isinstance(leaf, jax.Array) and not (
            leaf.is_fully_addressable or leaf.is_fully_replicated
        ):
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree.map(one, tree)
