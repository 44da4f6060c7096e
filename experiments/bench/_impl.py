"""What every benchmarked implementation provides to the worker."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


class Unsupported(Exception):
    """The implementation cannot run this case; the message says why and is
    recorded in results.json instead of the row silently disappearing."""


@dataclasses.dataclass
class Prepared:
    """One (shape, impl, mode, dtype) ready to run.

    Attributes:
      outputs: computes the compared outputs once (`y`, and `dx`, `dk` for
        forward+backward) as float32 NumPy arrays in jconv's layouts.
      run: `run(n)` performs `n` convolutions (with their backward pass for
        forward+backward; `n` steps of whole scans for in_scan, `n` being
        the case's `steps_per_call`) and returns when they are done (JAX
        `block_until_ready`, a TensorFlow `.numpy()`; PyTorch on the CPU is
        synchronous), so a clock around it measures the work.
      arg_bytes: bytes of the arguments as the implementation holds them.
      info: what a reader needs to interpret the row (layout conversions, the
        API used, the memory analysis).
      eager: for JAX, one call of the public function from Python, dispatch
        and argument checks included (None elsewhere).
    """

    outputs: Callable[[], dict]
    run: Callable[[int], None]
    arg_bytes: int
    info: dict = dataclasses.field(default_factory=dict)
    eager: Callable[[], None] | None = None
