"""The errors a run reports as one line and an exit code, and the config
checks that raise them, naming the field."""

from __future__ import annotations

import errno
from typing import Any


class ExperimentError(Exception):
    """An error the user can fix; `main` prints it as one line and exits."""

    exit_code = 1


class ConfigError(ExperimentError, ValueError):
    """A bad or unknown config field; raised before any computation."""

    exit_code = 2


class WorkdirError(ExperimentError):
    """The workdir holds a finished run, another config, or foreign files."""

    exit_code = 3


class NonFiniteError(ExperimentError, FloatingPointError):
    """A logged value (the loss, a gradient norm) became NaN or infinite."""

    exit_code = 4


def require(ok: bool, field: str, value: Any, must: str) -> None:
    """Raises `ConfigError("`config.<field>` (=value) must ...")` unless `ok`.

    Example:
      >>> require(0.1 > 0, "optimizer.learning_rate", 0.1, "be positive")
      >>> require(-1 > 0, "optimizer.learning_rate", -1, "be positive")
      Traceback (most recent call last):
      ...
      experiments._errors.ConfigError: `config.optimizer.learning_rate` (=-1) must ...
    """
    if not ok:
        raise ConfigError(f"`config.{field}` (={value!r}) must {must}")


def check_fields(config, allowed, prefix: str = "", *, complete: bool = False) -> None:
    """Refuses config fields that `allowed` does not name (and, if
    `complete`, fields it names that `config` lacks).

    Args:
      config: a `ConfigDict` (or mapping).
      allowed: the schema: an experiment's reference config (a `ConfigDict`),
        or a mapping `{name: None}` for a leaf, `{name: {...}}` for a
        sub-config.
      prefix: dotted path of `config` inside the root config.
      complete: also refuse a missing field.

    Raises:
      ConfigError: naming the first unknown field and listing the known ones,
        or the first missing one.
    """
    for name, value in config.items():
        path = f"{prefix}{name}"
        if name not in allowed:
            known = ", ".join(sorted(allowed.keys()))
            raise ConfigError(
                f"`config.{path}` is not a known field; known fields here: {known}"
            )
        sub = allowed[name]
        if hasattr(sub, "items"):
            if not hasattr(value, "items"):
                raise ConfigError(f"`config.{path}` (={value!r}) must be a sub-config")
            check_fields(value, sub, prefix=f"{path}.")
    if complete:
        _check_complete(config, allowed, prefix)


def _check_complete(config, allowed, prefix: str) -> None:
    for name, sub in allowed.items():
        if name not in config:
            raise ConfigError(f"`config.{prefix}{name}` is missing")
        if hasattr(sub, "items"):
            _check_complete(config[name], sub, f"{prefix}{name}.")


def disk_full(exc: BaseException | None) -> bool:
    """True if `exc`, or an exception it was raised from, says the disk is
    full (orbax and tensorstore wrap the `OSError` or only keep its text)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def first_line(exc: BaseException, limit: int = 200) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."
