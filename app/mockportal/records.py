"""What the mock portal stores per dossier."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.status import DossierStatus


@dataclass(slots=True)
class StoredDossier:
    ma_ho_so: str
    unit: str
    data: dict[str, Any]  # the portal form, as accepted
    content_hash: str
    created_at: datetime
    updated_at: datetime
    # Progress records by identity (contract §3.2: one per identity), in arrival order.
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def status(self) -> DossierStatus:
        return DossierStatus(self.data["TrangThaiHoSo"])

    def with_progress(self) -> dict[str, Any]:
        """The ``TraCuuHoSo`` form: the dossier plus ``QuaTrinhXuLy``, oldest first (by
        ``ThoiDiemXuLy``, then by arrival)."""
        records = list(self.progress.values())
        ordered = sorted(range(len(records)), key=lambda i: (records[i]["ThoiDiemXuLy"], i))
        return self.data | {"QuaTrinhXuLy": [records[i] for i in ordered]}
