"""Operator actions: sources, quarantine, dead letters, read-back (scope `admin`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
