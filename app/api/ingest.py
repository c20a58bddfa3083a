"""Push mode: dossiers and progress records sent by provincial systems (scope `ingest`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
