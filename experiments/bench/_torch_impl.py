"""The PyTorch peer: `torch.nn.functional.conv2d`, eager mode, on CUDA (cuDNN)
where the installed build has it (the orchestrator runs peers on a GPU machine
only with `config.peers_on_gpu_machine`), else on the CPU.

PyTorch's convolution is NCHW with OIHW weights: the inputs are converted from
NHWC/HWIO once, outside the timed region, and the outputs back only for the
answer check. "same" pads that are uneven (stride 2, the stem) are not
expressible in `conv2d`'s `padding`, so they are applied with `F.pad` inside
the timed call, as a PyTorch user has to. On CUDA every call ends with
`torch.cuda.synchronize()`, so a clock around it measures the work (on the
CPU, PyTorch is synchronous); float32 runs with PyTorch's default TF32
convolutions, as JAX's default precision does.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from experiments.bench._cases import ConvCase
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


def _nchw(a: np.ndarray, dtype) -> torch.Tensor:
    nchw = torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
    return nchw.to(DEVICE, dtype)


def prepare(impl: str, case: ConvCase, mode: str, dtype: str, arrays) -> Prepared:
    dt = _DTYPES[dtype]
    g = case.geometry
    x = _nchw(arrays["x"], dt)
    ct = _nchw(arrays["ct"], dt)
    k = torch.from_numpy(np.ascontiguousarray(arrays["kernel"].transpose(3, 2, 0, 1)))
    k = k.to(DEVICE, dt)
    (top, bottom), (left, right) = case.pads
    if top == bottom and left == right:
        padding, pad_first = (top, left), None
    else:
        padding, pad_first = 0, (left, right, top, bottom)

    def conv(x_, k_):
        if pad_first is not None:
            x_ = F.pad(x_, pad_first)
        return F.conv2d(x_, k_, stride=g.strides, padding=padding, groups=g.groups)

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
        out = {"y": y.permute(0, 2, 3, 1).numpy()}
        if grads:
            out["dx"] = grads[0].permute(0, 2, 3, 1).numpy()
            out["dk"] = grads[1].permute(2, 3, 1, 0).numpy()
        return {n: np.ascontiguousarray(a) for n, a in out.items()}

    def run(n):
        for _ in range(n):
            step()
        _sync()

    arg_bytes = sum(t.element_size() * t.nelement() for t in (x, k))
    if mode != "fwd":
        arg_bytes += ct.element_size() * ct.nelement()
    info = {
        "via": "torch.nn.functional.conv2d"
        + (" (F.pad first: uneven 'same' pads)" if pad_first else "")
        + (" on CUDA (cuDNN)" if DEVICE.type == "cuda" else ""),
        "layout": "NCHW / OIHW, converted from NHWC / HWIO outside the timed region",
        "device": "gpu" if DEVICE.type == "cuda" else "cpu",
    }
    return Prepared(outputs=outputs, run=run, arg_bytes=int(arg_bytes), info=info)
