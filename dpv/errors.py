"""User-facing errors: one clear line, a non-zero exit, no traceback."""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar, cast

F = TypeVar("F", bound=Callable[..., object])


class DPVError(Exception):
    """Bad input from the user (config, checkpoint, spec, board size...).

    The message must name what is wrong; CLIs print it as one line and exit 2.
    """


class ConfigError(DPVError):
    pass


class CheckpointError(DPVError):
    pass


def cli_main(fn: F) -> F:
    """Wrap a CLI entry point: DPVError -> 'error: ...' on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DPVError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return cast(F, wrapper)
