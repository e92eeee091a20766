"""lineguard: streaming defect detection for factory production lines."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lineguard")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
