"""Dataset curation: find (``check``) and quarantine (``clean``) corrupt, duplicated, blurred, badly exposed
and badly labelled images before they reach training."""

from vision.curation.quarantine import CLEANABLE_KINDS, quarantine, restore
from vision.curation.scan import (
    DEFAULT_CLEAN_KINDS,
    CheckConfig,
    CurationReport,
    Finding,
    Severity,
    check_dataset,
    detect_format,
)

__all__ = [
    "CLEANABLE_KINDS",
    "DEFAULT_CLEAN_KINDS",
    "CheckConfig",
    "CurationReport",
    "Finding",
    "Severity",
    "check_dataset",
    "detect_format",
    "quarantine",
    "restore",
]
