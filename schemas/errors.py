"""The root of lineguard's exception tree.

Every error that lineguard raises on purpose derives from :class:`LineguardError`, so a caller can catch the
product's failures without catching programming errors. ``schemas`` is the package both sides import, so the
root lives here.
"""

from __future__ import annotations


class LineguardError(Exception):
    """Root of every error lineguard raises on purpose."""


class ConfigurationError(LineguardError):
    """A setting, a path or a command-line value a person has to fix. The CLI exits with code 2."""


class SerializationError(LineguardError):
    """A record could not be encoded or decoded (bad bytes, unknown writer schema, wrong shape)."""


class UnknownSchemaError(SerializationError):
    """The bytes name a writer schema that this reader does not know (fingerprint or registry id)."""


class FrameTooLargeError(LineguardError):
    """A frame is larger than the inline limit and claim-check is disabled."""


class ServiceUnavailableError(LineguardError):
    """Kafka or MongoDB could not be reached within the configured bound."""
