"""Reads: a dossier and its sync state, a unit's sync summary (scope `read`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
