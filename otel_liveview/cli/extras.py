"""The optional extras the subcommands need, and telling their absence from a real import error."""

from __future__ import annotations


def is_missing(error: ModuleNotFoundError, package: str) -> bool:
    """The module `error` could not find is `package` or one of its submodules (`rich.cells`)."""
    return error.name is not None and error.name.split(".")[0] == package


_DISTRIBUTIONS = {
    "yaml": "PyYAML",
    "grpc": "grpcio",
}  # what pip calls a module's package, where the names differ


def distribution(module: str) -> str:
    """What `pip install` calls the package of `module`."""
    return _DISTRIBUTIONS.get(module, module)


__all__ = ["distribution", "is_missing"]
