"""The names of what the synthetic generator draws: surfaces and defect kinds.

No OpenCV here (the renderers need it): a camera checks its ``--source synthetic:?material=...&defects=...``
options against these names before anything heavy is imported.
"""

from __future__ import annotations

# Surfaces with a structure of their own (vision.synthetic_surfaces).
TEXTURED_SURFACES: tuple[str, ...] = ("steel", "tile", "fabric", "pcb")
# "mixed": metal or plastic, half each (the datasets' default since the first models); "all": any of the six.
SURFACES: tuple[str, ...] = ("metal", "plastic", *TEXTURED_SURFACES, "mixed", "all")

DEFAULT_DEFECT_CLASSES: tuple[str, ...] = ("scratch", "spot", "crack", "stain", "dent")
# The hard cases of real lines, on request: long one-pixel hairlines, faint diffuse haze, pits of a few px.
HARD_DEFECT_CLASSES: tuple[str, ...] = ("hairline", "haze", "pit")
DEFECT_CLASSES: tuple[str, ...] = (*DEFAULT_DEFECT_CLASSES, *HARD_DEFECT_CLASSES)
