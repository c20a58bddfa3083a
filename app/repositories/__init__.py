"""Every query the service runs lives in a repository here. Repositories take the caller's
session and never commit."""

from app.repositories.api_keys import ApiKeyRepository
from app.repositories.catalogue import CatalogueRepository
from app.repositories.dead_letters import DeadLetterRepository
from app.repositories.dossiers import DossierRepository
from app.repositories.outbox import OutboxRepository
from app.repositories.portal_holds import PortalHoldRepository
from app.repositories.push_log import PushLogRepository
from app.repositories.quarantine import QuarantineRepository
from app.repositories.sources import SourceMessageRepository, SourceRepository

__all__ = [
    "ApiKeyRepository",
    "CatalogueRepository",
    "DeadLetterRepository",
    "DossierRepository",
    "OutboxRepository",
    "PortalHoldRepository",
    "PushLogRepository",
    "QuarantineRepository",
    "SourceMessageRepository",
    "SourceRepository",
]
