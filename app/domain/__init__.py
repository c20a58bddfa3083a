"""The portal contract as pure code: codes, transitions, validation, formulas. No I/O here."""

from app.domain.agency import (
    agency_of_dossier,
    is_agency_code,
    is_dossier_code,
    is_top_level_unit,
    unit_of,
    unit_of_dossier,
    unit_owns_dossier,
)
from app.domain.codes import (
    ApplicantType,
    Channel,
    ClientAction,
    ErrorCode,
    OnlinePayment,
    ReturnMethod,
    error_policy,
)
from app.domain.dates import VN_TZ, format_portal_datetime, parse_portal_datetime
from app.domain.dossier import Dossier, parse_dossier
from app.domain.progress import ProgressRecord, parse_progress
from app.domain.status import DossierStatus, is_transition_allowed, reachable_from
from app.domain.validation import FieldIssue, RecordInvalid

__all__ = [
    "VN_TZ",
    "ApplicantType",
    "Channel",
    "ClientAction",
    "Dossier",
    "DossierStatus",
    "ErrorCode",
    "FieldIssue",
    "OnlinePayment",
    "ProgressRecord",
    "RecordInvalid",
    "ReturnMethod",
    "agency_of_dossier",
    "error_policy",
    "format_portal_datetime",
    "is_agency_code",
    "is_dossier_code",
    "is_top_level_unit",
    "is_transition_allowed",
    "parse_dossier",
    "parse_portal_datetime",
    "parse_progress",
    "reachable_from",
    "unit_of",
    "unit_of_dossier",
    "unit_owns_dossier",
]
