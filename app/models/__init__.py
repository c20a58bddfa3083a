"""SQLAlchemy models. Importing this package registers every table on ``Base.metadata``."""

from app.models.api_key import ApiKey
from app.models.base import Base
from app.models.catalogue import Agency, Procedure
from app.models.dossier import DossierRow, ProgressRow
from app.models.quarantine import QuarantineEntry
from app.models.source import PollCheckpoint, PollWorker, Source, SourceMessage
from app.models.sync import (
    DeadLetter,
    IndicatorSnapshotRow,
    PortalHold,
    PushAttempt,
    SyncState,
    SyncStatus,
)

__all__ = [
    "Agency",
    "ApiKey",
    "Base",
    "DeadLetter",
    "DossierRow",
    "IndicatorSnapshotRow",
    "PollCheckpoint",
    "PollWorker",
    "PortalHold",
    "Procedure",
    "ProgressRow",
    "PushAttempt",
    "QuarantineEntry",
    "Source",
    "SourceMessage",
    "SyncState",
    "SyncStatus",
]
