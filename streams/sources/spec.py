"""Parse ``--source`` values.

Grammar: ``KIND[:TARGET][?key=value&key=value]``

- ``synthetic`` or ``synthetic:?seed=7&defect_rate=0.3&size=640x480``
- ``folder:/data/parts?loop=1&pattern=*.png``
- ``video:/data/line3.mp4?loop=1``
- ``opencv:0`` (device index) or ``opencv:rtsp://cam-12.local/stream`` (the rest is handed to OpenCV
  untouched, query string included, because stream URLs carry their own parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qsl

from schemas.errors import ConfigurationError


class SourceKind(StrEnum):
    opencv = "opencv"
    video = "video"
    folder = "folder"
    synthetic = "synthetic"


# Options each kind accepts; anything else is a typo the user should hear about.
_OPTIONS: dict[SourceKind, frozenset[str]] = {
    SourceKind.opencv: frozenset(),
    SourceKind.video: frozenset({"loop"}),
    SourceKind.folder: frozenset({"loop", "pattern"}),
    SourceKind.synthetic: frozenset({"seed", "defect_rate", "size", "material", "defects"}),
}

SOURCE_SPEC_HELP = (
    "synthetic[:?seed=N&defect_rate=0.3&size=WxH&material=metal|plastic|steel|tile|fabric|pcb|mixed|all"
    "&defects=scratch,hairline,...] | "
    "folder:PATH[?loop=1&pattern=*.png] | video:PATH[?loop=1] | opencv:DEVICE_INDEX | opencv:rtsp://... / http(s)://..."
)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    kind: SourceKind
    target: str = ""
    options: dict[str, str] = field(default_factory=dict)

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean option: 1/true/yes/on or 0/false/no/off."""
        raw = self.options.get(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off"}:
            return False
        raise ConfigurationError(f"source option {name}={raw!r} is not a boolean (use 1 or 0)")

    def number(self, name: str, default: float) -> float:
        raw = self.options.get(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigurationError(f"source option {name}={raw!r} is not a number") from None


def parse_source_spec(text: str) -> SourceSpec:
    """Turn a ``--source`` value into a :class:`SourceSpec`; a malformed value is a ``ConfigurationError``."""
    raw = text.strip()
    if not raw:
        raise ConfigurationError(f"empty --source; expected one of: {SOURCE_SPEC_HELP}")
    kind_text, _, rest = raw.partition(":")
    try:
        kind = SourceKind(kind_text.lower())
    except ValueError:
        raise ConfigurationError(
            f"unknown source kind {kind_text!r} in --source {text!r}; expected one of: {SOURCE_SPEC_HELP}"
        ) from None
    if kind is SourceKind.opencv:
        if not rest:
            raise ConfigurationError("--source opencv: needs a device index or a stream URL, e.g. opencv:0")
        return SourceSpec(kind, rest)
    target, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    unknown = sorted(set(options) - _OPTIONS[kind])
    if unknown:
        allowed = ", ".join(sorted(_OPTIONS[kind])) or "none"
        raise ConfigurationError(
            f"unknown option(s) {', '.join(unknown)} for {kind.value} source (allowed: {allowed})"
        )
    if kind in (SourceKind.video, SourceKind.folder) and not target:
        raise ConfigurationError(f"--source {kind.value}: needs a path, e.g. {kind.value}:/data/line3")
    if kind is SourceKind.synthetic and target:
        raise ConfigurationError(f"--source synthetic takes options only (synthetic:?seed=7), not {target!r}")
    return SourceSpec(kind, target, options)


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)``; width and height must be positive."""
    width_text, sep, height_text = text.lower().partition("x")
    try:
        width, height = int(width_text), int(height_text)
    except ValueError:
        width = height = 0
    if not sep or width <= 0 or height <= 0:
        raise ConfigurationError(f"{what} {text!r} is not WIDTHxHEIGHT with positive integers, e.g. 640x480")
    return width, height
