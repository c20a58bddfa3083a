"""Normalise stage: source records → canonical dossiers and progress, or quarantine.

One module per dialect holds its field mapping (source-dialects.md); ``common`` holds
the status maps (defaults overridden per source), date parsing and the outcome types.
"""

from app.sync.normalise.common import (
    DEFAULT_STATUS_MAPS,
    Catalogue,
    Context,
    Normalised,
    Rejection,
    StatusMap,
)

__all__ = ["DEFAULT_STATUS_MAPS", "Catalogue", "Context", "Normalised", "Rejection", "StatusMap"]
