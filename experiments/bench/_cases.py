"""The benchmarked convolutions: shapes, FLOP counts, inputs, the answer check.

NumPy only, so every worker process (JAX, PyTorch, TensorFlow) can import it
without pulling in another framework.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import NamedTuple

import numpy as np

# "in_scan" is "fwd+bwd" as a training loop runs it: `scan_steps` steps inside
# one jitted `lax.scan`, timed per step. JAX only: no peer has a scan.
MODES = ("fwd", "fwd+bwd", "in_scan")
JAX_ONLY_MODES = ("in_scan",)
DTYPES = ("float32", "bfloat16")
# What the backward pass costs relative to the forward one: the input gradient
# and the kernel gradient are each one convolution as large as the forward.
MODE_FLOP_FACTOR = {"fwd": 1, "fwd+bwd": 3, "in_scan": 3}
# A mode whose answers are another mode's: checked against that mode's reference.
REFERENCE_MODE = {"fwd": "fwd", "fwd+bwd": "fwd+bwd", "in_scan": "fwd+bwd"}
SCAN_STEPS = 10  # steps of the in_scan mode's lax.scan (more if inner_iters is)


class RowKey(NamedTuple):
    """What names one benchmark row, in every record, job and table.

    Example:
      >>> key = RowKey.of({"shape": "mnist", "impl": "torch", "mode": "fwd",
      ...                  "dtype": "float32", "status": "ok"})
      >>> "/".join(key), key._asdict()["impl"]
      ('mnist/torch/fwd/float32', 'torch')
    """

    shape: str
    impl: str
    mode: str
    dtype: str

    @classmethod
    def of(cls, record: dict) -> RowKey:
        """The key of a record, job or any dict holding the four fields."""
        return cls(*(record[field] for field in cls._fields))


_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}  # the spatial axes' letters, by rank


def spatial_letters(rank: int) -> str:
    """The layout letters of `rank` spatial axes: `W`, `HW` or `DHW`.

    Example:
      >>> f"N{spatial_letters(3)}C", f"{spatial_letters(1)}IO"
      ('NDHWC', 'WIO')
    """
    return _SPATIAL[rank]


def _per_axis(value, rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """One convolution layer, batch left open, of spatial rank r = `len(hw)`
    (1, 2 or 3). Layout: input `(N, *hw, C_in)`, kernel
    `(*kernel_hw, C_in // groups, C_out)`, output `(N, *out_hw, C_out)`
    (`hw` is `(W,)`, `(H, W)` or `(D, H, W)`). `strides` and `dilation_rate`
    are an int or r ints."""

    hw: tuple[int, ...]
    c_in: int
    c_out: int
    kernel_hw: tuple[int, ...]
    strides: int | tuple[int, ...] = 1
    padding: str = "same"  # "valid", "same" (TensorFlow's) or "causal"
    groups: int = 1
    dilation_rate: int | tuple[int, ...] = 1

    def __post_init__(self):
        rank = len(self.hw)
        if rank not in _SPATIAL or len(self.kernel_hw) != rank:
            raise ValueError(
                f"`hw` (={self.hw}) and `kernel_hw` (={self.kernel_hw}) must "
                "both have 1, 2 or 3 entries"
            )
        for name in ("strides", "dilation_rate"):
            object.__setattr__(self, name, _per_axis(getattr(self, name), rank))

    @property
    def rank(self) -> int:
        """The number of spatial axes."""
        return len(self.hw)

    @property
    def kernel_span(self) -> tuple[int, ...]:
        """The dilated kernel's extent per axis, `dilation * (k - 1) + 1`."""
        return tuple(
            d * (k - 1) + 1 for k, d in zip(self.kernel_hw, self.dilation_rate)
        )


# Every shape a peer can run natively: "valid"/"same" padding, and "causal"
# in 1-D (Keras' Conv1D has it; PyTorch pads the left end with F.pad first).
# A case a peer cannot express is recorded as unsupported, saying why.
SHAPES = {
    # The document's 4x4 image and 3x3 kernel.
    "doc4x4": Geometry((4, 4), 1, 1, (3, 3), padding="valid"),
    # The first layer of the Keras MNIST convnet.
    "mnist": Geometry((28, 28), 1, 32, (3, 3), padding="valid"),
    # ResNet stages 1, 2 and 3, 3x3.
    "resnet56": Geometry((56, 56), 64, 64, (3, 3)),
    "resnet28": Geometry((28, 28), 128, 128, (3, 3)),
    "resnet14": Geometry((14, 14), 256, 256, (3, 3)),
    # The ResNet stem, 7x7 stride 2.
    "stem": Geometry((224, 224), 3, 64, (7, 7), strides=(2, 2)),
    # MobileNet-style depthwise 3x3 (groups = C_in).
    "depthwise": Geometry((56, 56), 128, 128, (3, 3), groups=128),
    # ConvNeXt stage 1 depthwise 7x7.
    "convnext_dw7": Geometry((56, 56), 96, 96, (7, 7), groups=96),
    # ResNeXt grouped 3x3, 32 groups of 4 channels.
    "resnext28": Geometry((28, 28), 128, 128, (3, 3), groups=32),
    # 1x1 pointwise 256 -> 512 (a GEMM).
    "pointwise28": Geometry((28, 28), 256, 512, (1, 1)),
    # MobileNet-style stride-2 depthwise 3x3.
    "depthwise_s2": Geometry((112, 112), 64, 64, (3, 3), strides=(2, 2), groups=64),
    # 13x13 depthwise (large-kernel ConvNets).
    "dw13": Geometry((56, 56), 128, 128, (13, 13), groups=128),
    # RepLKNet stage 3 depthwise 31x31.
    "replknet31": Geometry((28, 28), 256, 256, (31, 31), groups=256),
    # SLaK-style 51x5 depthwise strip.
    "slak51x5": Geometry((56, 56), 128, 128, (51, 5), groups=128),
    # 1-D: a layer of WaveNet's dilated causal stack, 2 taps 8 apart
    # (Keras Conv1D padding="causal": 8 zeros on the left, none on the right).
    "wavenet_d8": Geometry((4096,), 64, 64, (2,), padding="causal", dilation_rate=8),
    # 1-D: a ResNet layer on a signal (audio, ECG), 3 taps.
    "resnet1d": Geometry((1024,), 64, 64, (3,)),
    # 3-D: VoxNet's second layer, 3x3x3 "valid" on its first layer's 14^3
    # output (a 32^3 occupancy grid, 5x5x5 at stride 2, not here: XLA:CPU
    # takes seconds for that 3-D stride-2 input gradient).
    "voxnet_conv2": Geometry((14, 14, 14), 32, 32, (3, 3, 3), padding="valid"),
    # 3-D: a 3-D U-Net (medical volume) 3x3x3 layer on a 32^3 patch.
    "unet3d": Geometry((32, 32, 32), 32, 32, (3, 3, 3)),
}


def winograd_applies(geometry: Geometry) -> bool:
    """Winograd F(m x m, 3 x 3) (`jconv._winograd`): 2-D 3x3 kernels, stride 1."""
    return (
        geometry.kernel_hw == (3, 3)
        and geometry.strides == (1, 1)
        and geometry.dilation_rate == (1, 1)
    )


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" rule (the odd pixel at the end), for the peers that
    take explicit pads; `kernel` is the dilated kernel's span. The answer
    check compares against jconv, so a disagreement with
    `jconv.resolve_padding` cannot pass unnoticed."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@dataclasses.dataclass(frozen=True)
class ConvCase:
    """A geometry with its batch size and inner-loop count, as one benchmark row
    family (every impl, mode and dtype runs it)."""

    shape: str
    geometry: Geometry
    batch: int
    inner_iters: int

    @property
    def rank(self) -> int:
        """The number of spatial axes (1, 2 or 3)."""
        return self.geometry.rank

    @property
    def scan_steps(self) -> int:
        """The in_scan mode's scan length: `SCAN_STEPS`, or `inner_iters` where
        that is larger (the small shapes: their fwd+bwd row is a loop of as
        many, so the two times are taken alike)."""
        return max(SCAN_STEPS, self.inner_iters)

    def steps_per_call(self, mode: str) -> int:
        """Convolutions (with their backward pass, but for "fwd") that one
        timed call runs: `inner_iters`, or the scan's length for in_scan."""
        return self.scan_steps if mode == "in_scan" else self.inner_iters

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, *self.geometry.hw, self.geometry.c_in)

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        g = self.geometry
        return (*g.kernel_hw, g.c_in // g.groups, g.c_out)

    @property
    def pads(self) -> tuple[tuple[int, int], ...]:
        """`(low, high)` zeros per spatial axis: none for "valid",
        TensorFlow's rule for "same", `dilation * (k - 1)` on the low end for
        "causal" (Keras Conv1D's)."""
        g = self.geometry
        if g.padding == "valid":
            return ((0, 0),) * g.rank
        if g.padding == "causal":
            return tuple((span - 1, 0) for span in g.kernel_span)
        return tuple(same_pads(*a) for a in zip(g.hw, g.kernel_span, g.strides))

    @property
    def out_hw(self) -> tuple[int, ...]:
        g = self.geometry
        return tuple(
            (size + lo + hi - span) // s + 1
            for size, (lo, hi), span, s in zip(
                g.hw, self.pads, g.kernel_span, g.strides
            )
        )

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.batch, *self.out_hw, self.geometry.c_out)

    @property
    def depthwise(self) -> bool:
        g = self.geometry
        return g.groups > 1 and g.groups == g.c_in == g.c_out

    def flops(self, mode: str) -> int:
        """Multiply-adds times two: `2 N prod(out_hw) prod(kernel_hw)
        (C_in / groups) C_out` (2-D: `2 N Ho Wo KH KW (C_in / groups) C_out`),
        three times that for forward+backward (input and kernel gradients),
        per step for in_scan."""
        g = self.geometry
        positions = math.prod(self.out_hw) * math.prod(g.kernel_hw)
        fwd = 2 * self.batch * positions * (g.c_in // g.groups) * g.c_out
        return fwd * MODE_FLOP_FACTOR[mode]

    def describe(self) -> dict:
        """The case as results.json records it; `dilation_rate` only where it
        is not 1 (the 2-D rows' records are as they always were)."""
        g = self.geometry
        out = {
            "x_shape": list(self.x_shape),
            "kernel_shape": list(self.kernel_shape),
            "out_shape": list(self.out_shape),
            "strides": list(g.strides),
            "padding": g.padding,
            "pads": [list(p) for p in self.pads],
            "groups": g.groups,
            "batch": self.batch,
            "inner_iters": self.inner_iters,
        }
        if any(d != 1 for d in g.dilation_rate):
            out["dilation_rate"] = list(g.dilation_rate)
        return out


def make_case(shape: str, batch: int, inner_iters: int) -> ConvCase:
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    return ConvCase(shape, SHAPES[shape], int(batch), int(inner_iters))


def make_inputs(
    case: ConvCase, seed: int, image=None, kernel=None
) -> dict[str, np.ndarray]:
    """float32 `x` (channels last), `kernel` (`(*K, I, O)`) and the output
    cotangent `ct`.

    The kernel is scaled by `1 / sqrt(fan_in)` so outputs stay near unit size
    whatever the shape (bfloat16 tolerances are relative to them). `image` and
    `kernel` replace the random ones (the document's example); the image is
    repeated over the batch.
    """
    rng = np.random.default_rng([seed, zlib.crc32(case.shape.encode())])
    *kernel_hw, c_group, _ = case.kernel_shape
    if image is None:
        x = rng.standard_normal(case.x_shape, dtype=np.float32)
    else:
        x = np.broadcast_to(np.asarray(image, np.float32), case.x_shape).copy()
    if kernel is None:
        kernel = rng.standard_normal(case.kernel_shape, dtype=np.float32)
        kernel /= np.float32(np.sqrt(math.prod(kernel_hw) * c_group))
    kernel = np.asarray(kernel, np.float32).reshape(case.kernel_shape)
    ct = rng.standard_normal(case.out_shape, dtype=np.float32)
    return {"x": x, "kernel": kernel, "ct": ct}


def output_names(mode: str) -> tuple[str, ...]:
    """The outputs compared between implementations: the convolution `y`, and
    for forward+backward the input gradient `dx` and kernel gradient `dk`
    (for cotangent `ct`), all float32 in jconv's layouts; in_scan's are its
    last step's."""
    return ("y",) if mode == "fwd" else ("y", "dx", "dk")


def compare(outputs: dict, reference: dict, tolerance: float) -> dict:
    """Largest `|out - ref| / max|ref|` per output: an error relative to the
    output's scale, which is what a bfloat16 rounding or a reordered float32
    sum perturbs.

    Returns:
      `{"errors": {name: err}, "tolerance": tol, "passed": bool}`; a shape
      mismatch counts as an infinite error.
    """
    errors = {}
    for name, ref in reference.items():
        out = np.asarray(outputs[name], np.float64)
        ref = np.asarray(ref, np.float64)
        if out.shape != ref.shape:
            errors[name] = float("inf")
            continue
        scale = max(float(np.abs(ref).max()), np.finfo(np.float32).tiny)
        err = float(np.abs(out - ref).max()) / scale
        errors[name] = err if np.isfinite(err) else float("inf")
    passed = all(e <= tolerance for e in errors.values())
    return {"errors": errors, "tolerance": tolerance, "passed": passed}
