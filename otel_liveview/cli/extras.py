"""The optional extras the subcommands need, and telling their absence from a real import error."""

from __future__ import annotations

import importlib

VIEW = ("rich", "grpc")  # what the view extra installs, by module name: the screen, the gRPC receiver
_DISTRIBUTIONS = {
    "yaml": "PyYAML",
    "grpc": "grpcio",
}  # what pip calls a module's package, where the names differ


def is_missing(error: ModuleNotFoundError, package: str) -> bool:
    """The module `error` could not find is `package` or one of its submodules (`rich.cells`)."""
    return error.name is not None and error.name.split(".")[0] == package


def absent(error: ModuleNotFoundError, modules: tuple[str, ...]) -> str | None:
    """If `error` is one of `modules` missing, which of them are not installed, as pip names them
    ("rich and grpcio"); None if the error is about something else."""
    if not any(is_missing(error, module) for module in modules):
        return None
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(_DISTRIBUTIONS.get(module, module))
    return " and ".join(missing)


__all__ = ["VIEW", "absent", "is_missing"]
