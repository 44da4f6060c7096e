"""jconv's optional native extension: oneDNN convolutions called from XLA
through its FFI (`native/onednn_conv.cc`, loaded by `jconv/_onednn.py`).

Everything else about the package is in pyproject.toml. The extension is
built where oneDNN's PyPI wheels exist (x86-64 Linux), against the XLA FFI
headers that jaxlib ships and the `onednn-devel-cpu-gomp` headers, both
build requirements. It is optional: without a C++ compiler, or where a
build requirement is missing, `pip install` still installs jconv, and
`impl="onednn"` says why it cannot run (`jconv.onednn_status()`).
"""

import importlib.metadata
import platform
import sys
from pathlib import Path

from setuptools import Extension, setup


def _located(distribution: str, suffix: str) -> Path | None:
    """The installed file of `distribution` whose path ends with `suffix`."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if ("/" + str(file).replace("\\", "/")).endswith("/" + suffix):
            return Path(file.locate())
    return None


def _extensions() -> list[Extension]:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        print("jconv: no oneDNN extension on this platform", file=sys.stderr)
        return []
    ffi_header = _located("jaxlib", "include/xla/ffi/api/ffi.h")
    dnnl_header = _located("onednn-devel-cpu-gomp", "include/oneapi/dnnl/dnnl.hpp")
    library = _located("onednn-cpu-gomp", "libdnnl.so")
    missing = [
        name
        for name, path in (
            ("jaxlib's XLA FFI headers", ffi_header),
            ("onednn-devel-cpu-gomp's headers", dnnl_header),
            ("onednn-cpu-gomp's library", library),
        )
        if path is None
    ]
    if missing:
        print(f"jconv: no oneDNN extension: missing {missing}", file=sys.stderr)
        return []
    ffi_include = ffi_header.parents[3]
    dnnl_include = dnnl_header.parents[2]
    return [
        Extension(
            "jconv._onednn_ffi",
            sources=["native/onednn_conv.cc"],
            language="c++",
            # jaxlib's headers as system headers: their warnings are not ours.
            extra_compile_args=[
                "-std=c++17",
                "-O2",
                "-fvisibility=hidden",
                "-isystem",
                str(ffi_include),
                "-isystem",
                str(dnnl_include),
            ],
            library_dirs=[str(library.parent)],
            libraries=["dnnl"],
            # libdnnl.so.3 lies in <prefix>/lib, where the onednn-cpu-gomp wheel
            # puts it: three levels above site-packages/jconv/ for a wheel
            # install, and the interpreter's prefix for an editable one (the
            # package directory is the source tree). `jconv._onednn` also
            # loads it by path before the extension, should both miss.
            runtime_library_dirs=["$ORIGIN/../../..", str(Path(sys.prefix) / "lib")],
            extra_link_args=["-Wl,-z,defs"],
            optional=True,
        )
    ]


setup(ext_modules=_extensions())
