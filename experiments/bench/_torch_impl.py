"""The PyTorch peer: `torch.nn.functional.conv1d` / `conv2d` / `conv3d` by the
case's rank, eager mode, on CUDA (cuDNN) where the installed build has it (the
orchestrator runs peers on a GPU machine only with
`config.peers_on_gpu_machine`), else on the CPU.

PyTorch's convolution is channels first (NCW, NCHW, NCDHW) with OI* weights:
the inputs are converted from channels last / `(*K, I, O)` once, outside the
timed region, and the outputs back only for the answer check. Pads that are
uneven ("same" at stride 2, the stem; "causal", all on the left) are not
expressible in `conv*d`'s `padding`, so they are applied with `F.pad` inside
the timed call, as a PyTorch user has to. On CUDA every call ends with
`torch.cuda.synchronize()`, so a clock around it measures the work (on the
CPU, PyTorch is synchronous); float32 runs with PyTorch's default TF32
convolutions, as JAX's default precision does.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from experiments.bench._cases import ConvCase, spatial_letters
from experiments.bench._impl import Prepared

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def meta() -> dict:
    out = {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        # The worker reads this: host RSS does not see GPU memory.
        "platform": "gpu" if DEVICE.type == "cuda" else "cpu",
    }
    if DEVICE.type == "cuda":
        out.update(
            torch_device=torch.cuda.get_device_name(DEVICE),
            cudnn=torch.backends.cudnn.version(),
        )
    return out


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def _channels_first(a: np.ndarray, dtype) -> torch.Tensor:
    """`(N, *S, C)` to `(N, C, *S)` (NHWC to NCHW in 2-D), on the device."""
    axes = (0, a.ndim - 1, *range(1, a.ndim - 1))
    return torch.from_numpy(np.ascontiguousarray(a.transpose(axes))).to(DEVICE, dtype)


def _channels_last(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, *range(2, t.ndim), 1).numpy()


def prepare(impl: str, case: ConvCase, mode: str, dtype: str, arrays) -> Prepared:
    dt = _DTYPES[dtype]
    g = case.geometry
    r = case.rank
    x = _channels_first(arrays["x"], dt)
    ct = _channels_first(arrays["ct"], dt)
    # (*K, I, O) to (O, I, *K): HWIO to OIHW in 2-D.
    k_axes = (r + 1, r, *range(r))
    k = torch.from_numpy(np.ascontiguousarray(arrays["kernel"].transpose(k_axes)))
    k = k.to(DEVICE, dt)
    if all(lo == hi for lo, hi in case.pads):
        padding, pad_first = tuple(lo for lo, _ in case.pads), None
    else:
        # F.pad lists the last axis first: (left, right, top, bottom) in 2-D.
        padding = 0
        pad_first = tuple(p for pair in reversed(case.pads) for p in pair)
    conv_nd = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[r]
    dilation = {} if g.dilation_rate == (1,) * r else {"dilation": g.dilation_rate}

    def conv(x_, k_):
        if pad_first is not None:
            x_ = F.pad(x_, pad_first)
        return conv_nd(
            x_, k_, stride=g.strides, padding=padding, groups=g.groups, **dilation
        )

    if mode == "fwd":

        def step():
            with torch.no_grad():
                return (conv(x, k),)

    else:
        x.requires_grad_(True)
        k.requires_grad_(True)

        def step():
            y = conv(x, k)
            dx, dk = torch.autograd.grad(y, (x, k), ct)
            return y.detach(), dx, dk

    def outputs():
        y, *grads = (t.float().cpu() for t in step())
        out = {"y": _channels_last(y)}
        if grads:
            out["dx"] = _channels_last(grads[0])
            out["dk"] = grads[1].permute(*range(2, r + 2), 1, 0).numpy()
        return {n: np.ascontiguousarray(a) for n, a in out.items()}

    def run(n):
        for _ in range(n):
            step()
        _sync()

    arg_bytes = sum(t.element_size() * t.nelement() for t in (x, k))
    if mode != "fwd":
        arg_bytes += ct.element_size() * ct.nelement()
    why_pad = (
        "causal: zeros on the left" if g.padding == "causal" else "uneven 'same' pads"
    )
    letters = spatial_letters(r)
    info = {
        "via": f"torch.nn.functional.conv{r}d"
        + (f" (F.pad first: {why_pad})" if pad_first else "")
        + (" on CUDA (cuDNN)" if DEVICE.type == "cuda" else ""),
        "layout": f"NC{letters} / OI{letters}, converted from N{letters}C / "
        f"{letters}IO outside the timed region",
        "device": "gpu" if DEVICE.type == "cuda" else "cpu",
    }
    return Prepared(outputs=outputs, run=run, arg_bytes=int(arg_bytes), info=info)
