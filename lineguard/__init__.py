"""lineguard: streaming defect detection for factory production lines."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Computed on first use: importing importlib.metadata costs tens of milliseconds that
    # `lineguard --help` should not pay.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("lineguard")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+source"
    raise AttributeError(f"module 'lineguard' has no attribute {name!r}")
