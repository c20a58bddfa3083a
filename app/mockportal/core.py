"""The mock portal's behaviour (portal-contract.md §2–§8), free of HTTP.

Every contract rule lives here: sessions bound to ``dstcode``, create/update semantics,
per-item validation and results, idempotent re-sends, the transition policy, unit
ownership, progress de-duplication and the look-ups. The HTTP layer (``app.py``) only
translates requests and responses, applies faults and keeps the journal.

Request handling never awaits between reading and writing state, so each request is
atomic with respect to the others on the event loop.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain.agency import agency_of_dossier, is_dossier_code, unit_of, unit_owns_dossier
from app.domain.codes import MAX_BATCH_ITEMS, ErrorCode
from app.domain.dossier import canonical_hash, parse_dossier
from app.domain.progress import parse_progress
from app.domain.status import DossierStatus, is_transition_allowed, transition_refusal_message
from app.domain.validation import FieldIssue, RecordInvalid
from app.mockportal.journal import journal_digest
from app.mockportal.persistence import Persistence
from app.mockportal.records import StoredDossier

INTEGRATION_SERVICES = frozenset({"DongBoHoSoMC", "CapNhatTienDoHoSoMC"})
SHARE_SERVICES = frozenset({"TraCuuHoSo", "LayThuTuc", "LayDanhSachTTHC", "LayDanhMucCoQuan"})

Rejection = Callable[[str | None], ErrorCode | None]
"""A ``reject`` fault: the code an item is refused with (by its MaHoSo), or None."""

MESSAGES = {
    ErrorCode.SUCCESS: "Thành công",
    ErrorCode.PARTIAL: "Một số hồ sơ không được cập nhật, xem data[]",
    ErrorCode.BAD_CREDENTIALS: "Sai tên đăng nhập hoặc mật khẩu",
    ErrorCode.SESSION_EXPIRED: "Phiên làm việc hết hạn",
    ErrorCode.ALREADY_EXISTS: "Hồ sơ đã tồn tại",
    ErrorCode.NOT_FOUND: "Không tìm thấy hồ sơ",
    ErrorCode.BATCH_TOO_LARGE: f"Số lượng bản ghi vượt quá {MAX_BATCH_ITEMS}",
    ErrorCode.UNKNOWN_SERVICE: "Dịch vụ không tồn tại",
    ErrorCode.UNIT_MISMATCH: "Mã đơn vị không khớp với phiên làm việc",
    ErrorCode.INTERNAL_ERROR: "Lỗi hệ thống",
}


class PortalError(Exception):
    """A whole-request failure: an error code, its HTTP status and a message."""

    def __init__(self, code: ErrorCode, message: str | None = None, http_status: int = 200):
        self.code = code
        self.message = message or MESSAGES.get(code, "")
        self.http_status = http_status
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error_code": int(self.code), "message": self.message}


@dataclass(frozen=True, slots=True)
class Account:
    unit: str
    username: str
    password: str


@dataclass(slots=True)
class Session:
    token: str
    unit: str
    expires_at: datetime

    @property
    def fingerprint(self) -> str:
        """What the journal records instead of the token: enough to correlate calls."""
        return session_fingerprint(self.token)


def session_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item's outcome, as answered and as the journal keeps it."""

    ma_ho_so: str | None
    error_code: int
    message: str
    status: str | None = None  # TrangThaiHoSo / TrangThai sent
    content_hash: str | None = None  # of the item as sent
    occurred_at: str | None = None  # ThoiDiemXuLy of a progress record
    duplicate: bool = False

    def answer(self) -> dict[str, Any]:
        return {"MaHoSo": self.ma_ho_so, "error_code": self.error_code, "message": self.message}


@dataclass(slots=True)
class UnitStats:
    rejected: Counter[int] = field(default_factory=Counter)
    duplicates: int = 0
    regressions_refused: int = 0


class PortalCore:
    """The portal's state and rules. One instance per running mock."""

    def __init__(self, persistence: Persistence | None = None, session_ttl_s: float = 1800):
        self.persistence = persistence
        self.session_ttl_s = session_ttl_s
        self.procedures: dict[str, dict[str, Any]] = {}
        self.agencies: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, Account] = {}
        self.dossiers: dict[str, StoredDossier] = {}
        self.sessions: dict[str, Session] = {}
        self.stats: dict[str, UnitStats] = {}
        if persistence is not None:
            catalogue = persistence.load_catalogue()
            if catalogue is not None:
                self._apply_catalogue(catalogue)
            self.dossiers = {d.ma_ho_so: d for d in persistence.load_dossiers()}

    # --- catalogue and accounts (§4, §9 seed) -----------------------------------------

    def seed(self, catalogue: Mapping[str, Any]) -> None:
        """Replace procedures, agencies and accounts (a seed replaces all of them)."""
        self._apply_catalogue(catalogue)
        if self.persistence is not None:
            self.persistence.save_catalogue(catalogue)

    def _apply_catalogue(self, catalogue: Mapping[str, Any]) -> None:
        self.procedures = {p["MaTTHC"]: dict(p) for p in catalogue.get("procedures", [])}
        self.agencies = {a["MaCoQuan"]: dict(a) for a in catalogue.get("agencies", [])}
        self.accounts = {
            a["username"]: Account(a["unit"], a["username"], a["password"])
            for a in catalogue.get("accounts", [])
        }
        self.sessions.clear()

    def catalogue(self) -> dict[str, Any]:
        return {
            "procedures": list(self.procedures.values()),
            "agencies": list(self.agencies.values()),
            "accounts": [
                {"unit": a.unit, "username": a.username, "password": a.password}
                for a in self.accounts.values()
            ],
        }

    # --- sessions (§2) --------------------------------------------------------------

    def authenticate(
        self, username: Any, password: Any, dstcode: str | None, now: datetime
    ) -> Session:
        account = self.accounts.get(username) if isinstance(username, str) else None
        if (
            account is None
            or not isinstance(password, str)
            or not secrets.compare_digest(account.password.encode(), password.encode())
            or dstcode != account.unit
        ):
            raise PortalError(ErrorCode.BAD_CREDENTIALS, http_status=401)
        session = Session(
            secrets.token_urlsafe(32), account.unit, now + timedelta(seconds=self.session_ttl_s)
        )
        self.sessions[session.token] = session
        return session

    def session_for(self, token: Any, dstcode: str | None, madonvi: Any, now: datetime) -> Session:
        """The caller's session, checked against ``dstcode`` and ``madonvi`` (§2, §3)."""
        session = self.sessions.get(token) if isinstance(token, str) else None
        if session is None or session.expires_at <= now:
            if session is not None:
                del self.sessions[session.token]
            raise PortalError(ErrorCode.SESSION_EXPIRED, http_status=401)
        if dstcode != session.unit or madonvi != session.unit:
            raise PortalError(
                ErrorCode.UNIT_MISMATCH,
                f"madonvi ({madonvi}) và dstcode ({dstcode}) phải là đơn vị của phiên "
                f"làm việc ({session.unit})",
            )
        return session

    def expire_session(self, token: Any) -> bool:
        return isinstance(token, str) and self.sessions.pop(token, None) is not None

    def expire_sessions_of(self, unit: str) -> int:
        tokens = [t for t, s in self.sessions.items() if s.unit == unit]
        for token in tokens:
            del self.sessions[token]
        return len(tokens)

    # --- DongBoHoSoMC (§3.1) ----------------------------------------------------------

    def sync_dossiers(
        self,
        unit: str,
        is_updating: Any,
        data: Any,
        now: datetime,
        *,
        commit: bool = True,
        reject: Rejection | None = None,
    ) -> list[ItemResult]:
        """Create (``isUpdating: "False"``) or update (``"True"``) dossiers, item by item.
        With ``commit=False`` nothing is stored (a dry run: what would be answered).
        ``reject`` (a fault) names the items refused whatever they hold, with its code."""
        items = _batch(data)
        if is_updating not in ("True", "False"):
            raise PortalError(
                ErrorCode.VALIDATION_FAILED, 'isUpdating: phải là chuỗi "True" hoặc "False"'
            )
        updating = is_updating == "True"
        results: list[ItemResult] = []
        # Items of one call apply in order; later items see earlier ones (dry run too).
        staged: dict[str, StoredDossier] = {}
        for index, raw in enumerate(items):
            sent = _sent(raw, "TrangThaiHoSo")
            try:
                _injected(reject, sent, index)
                stored = self._sync_one(unit, updating, index, raw, now=now, staged=staged)
            except _Refused as refused:
                result = sent.refused(refused)
            else:
                if stored is None:
                    result = sent.ok("Không có thay đổi", duplicate=True)
                else:
                    staged[stored.ma_ho_so] = stored
                    result = sent.ok(MESSAGES[ErrorCode.SUCCESS])
            results.append(result)
            if commit:  # a dry run (ack_then_lose) answers success: nothing to count
                self._count(unit, result)
        if commit and staged:
            self.dossiers.update(staged)
            if self.persistence is not None:
                self.persistence.save_dossiers(list(staged.values()))
        return results

    def _sync_one(
        self,
        unit: str,
        updating: bool,
        index: int,
        raw: Any,
        *,
        now: datetime,
        staged: Mapping[str, StoredDossier],
    ) -> StoredDossier | None:
        """The dossier to store, ``None`` for an identical re-send, or :class:`_Refused`."""
        try:
            dossier = parse_dossier(raw, procedures=self.procedures)
        except RecordInvalid as invalid:
            raise _Refused(ErrorCode.VALIDATION_FAILED, invalid.message(f"data[{index}]")) from None
        where = f"data[{index}]"
        if not unit_owns_dossier(unit, dossier.MaHoSo):
            raise _Refused(
                ErrorCode.UNIT_MISMATCH, f"{where}.MaHoSo: hồ sơ không thuộc đơn vị {unit}"
            )
        current = staged.get(dossier.MaHoSo) or self.dossiers.get(dossier.MaHoSo)
        if not updating and current is not None:
            raise _Refused(ErrorCode.ALREADY_EXISTS, f"{where}.MaHoSo: hồ sơ đã tồn tại")
        if updating and current is None:
            raise _Refused(ErrorCode.NOT_FOUND, f"{where}.MaHoSo: không tìm thấy hồ sơ")
        form = dossier.to_portal()
        content_hash = canonical_hash(form)
        if current is None:
            return StoredDossier(dossier.MaHoSo, unit, form, content_hash, now, now)
        if not is_transition_allowed(current.status, dossier.status):
            raise _Refused(
                ErrorCode.TRANSITION_REFUSED,
                f"{where}.TrangThaiHoSo: "
                + transition_refusal_message(current.status, dossier.status),
            )
        if current.content_hash == content_hash:
            return None  # idempotent re-send: success, nothing changes
        return StoredDossier(
            dossier.MaHoSo,
            unit,
            form,
            content_hash,
            current.created_at,
            now,
            dict(current.progress),
        )

    # --- CapNhatTienDoHoSoMC (§3.2) ------------------------------------------------------

    def update_progress(
        self,
        unit: str,
        data: Any,
        now: datetime,
        *,
        commit: bool = True,
        reject: Rejection | None = None,
    ) -> list[ItemResult]:
        items = _batch(data)
        results: list[ItemResult] = []
        added: dict[tuple[str, str], dict[str, Any]] = {}
        for index, raw in enumerate(items):
            sent = _sent(raw, "TrangThai")
            try:
                _injected(reject, sent, index)
                key, form = self._progress_one(unit, index, raw, added)
            except _Refused as refused:
                result = sent.refused(refused)
            else:
                if key is None:
                    result = sent.ok("Đã có bản ghi này", duplicate=True)
                else:
                    added[key] = form
                    result = sent.ok(MESSAGES[ErrorCode.SUCCESS])
            results.append(result)
            if commit:
                self._count(unit, result)
        if commit and added:
            for (code, identity), form in added.items():
                self.dossiers[code].progress[identity] = form
            if self.persistence is not None:
                self.persistence.save_progress(
                    [(code, identity, form) for (code, identity), form in added.items()]
                )
        return results

    def _progress_one(
        self, unit: str, index: int, raw: Any, added: Mapping[tuple[str, str], Any]
    ) -> tuple[tuple[str, str] | None, dict[str, Any]]:
        """The (dossier, identity) key and form to store; key ``None`` for a duplicate."""
        try:
            record = parse_progress(raw)
        except RecordInvalid as invalid:
            raise _Refused(ErrorCode.VALIDATION_FAILED, invalid.message(f"data[{index}]")) from None
        where = f"data[{index}]"
        if not unit_owns_dossier(unit, record.MaHoSo):
            raise _Refused(
                ErrorCode.UNIT_MISMATCH, f"{where}.MaHoSo: hồ sơ không thuộc đơn vị {unit}"
            )
        stored = self.dossiers.get(record.MaHoSo)
        if stored is None:
            raise _Refused(ErrorCode.NOT_FOUND, f"{where}.MaHoSo: hồ sơ chưa có trên Cổng")
        key = (record.MaHoSo, record.identity_hash())
        if key[1] in stored.progress or key in added:
            return None, {}
        return key, record.to_portal()

    def _count(self, unit: str, result: ItemResult) -> None:
        stats = self.stats.setdefault(unit, UnitStats())
        if result.duplicate:
            stats.duplicates += 1
        if result.error_code != 0:
            stats.rejected[result.error_code] += 1
        if result.error_code == ErrorCode.TRANSITION_REFUSED:
            stats.regressions_refused += 1

    # --- look-ups (§4) -----------------------------------------------------------------

    def lookup(self, unit: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``TraCuuHoSo``: one code (``mahoso``) or up to 100 (``dsmahoso``)."""
        if "dsmahoso" in body and body["dsmahoso"] is not None:
            codes = body["dsmahoso"]
            if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                raise PortalError(ErrorCode.VALIDATION_FAILED, "dsmahoso: phải là danh sách mã")
            if len(codes) > MAX_BATCH_ITEMS:
                raise PortalError(ErrorCode.BATCH_TOO_LARGE)
            found, missing = [], []
            for code in dict.fromkeys(codes):
                stored = self._visible(unit, code)
                if stored is None:
                    missing.append(code)
                else:
                    found.append(stored.with_progress())
            return {
                "error_code": 0,
                "message": MESSAGES[ErrorCode.SUCCESS],
                "data": found,
                "khongtimthay": missing,
            }
        code = body.get("mahoso")
        if not isinstance(code, str) or not code:
            raise PortalError(ErrorCode.VALIDATION_FAILED, "mahoso: bắt buộc (hoặc dsmahoso)")
        stored = self._visible(unit, code)
        if stored is None:
            raise PortalError(ErrorCode.NOT_FOUND)
        return {
            "error_code": 0,
            "message": MESSAGES[ErrorCode.SUCCESS],
            "data": stored.with_progress(),
        }

    def _visible(self, unit: str, code: str) -> StoredDossier | None:
        # Another unit's dossier is "not found": the answer never reveals that it exists.
        stored = self.dossiers.get(code)
        return stored if stored is not None and stored.unit == unit else None

    def procedure(self, body: Mapping[str, Any]) -> dict[str, Any]:
        code = body.get("maTTHC")
        if not isinstance(code, str) or not code:
            raise PortalError(ErrorCode.VALIDATION_FAILED, "maTTHC: bắt buộc")
        procedure = self.procedures.get(code)
        if procedure is None:
            raise PortalError(ErrorCode.NOT_FOUND, f"Không tìm thấy thủ tục {code}")
        return {"error_code": 0, "message": MESSAGES[ErrorCode.SUCCESS], "data": procedure}

    def procedure_list(self) -> dict[str, Any]:
        return {
            "error_code": 0,
            "message": MESSAGES[ErrorCode.SUCCESS],
            "data": list(self.procedures.values()),
        }

    def agency_list(self) -> dict[str, Any]:
        return {
            "error_code": 0,
            "message": MESSAGES[ErrorCode.SUCCESS],
            "data": list(self.agencies.values()),
        }

    # --- control (§9) -------------------------------------------------------------------

    def reset_dossiers(self, unit: str | None = None, agency: str | None = None) -> int:
        """Forget every dossier, a unit's, or one agency's (by the code prefixing MaHoSo)."""
        codes = [
            c
            for c, d in self.dossiers.items()
            if (unit is None or d.unit == unit) and (agency is None or c.startswith(agency + "-"))
        ]
        for code in codes:
            del self.dossiers[code]
        if agency is None:
            if unit is None:
                self.stats.clear()
            else:
                self.stats.pop(unit, None)
        if self.persistence is not None:
            self.persistence.delete_dossiers(codes)
        return len(codes)

    def set_dossier(
        self,
        data: Mapping[str, Any],
        progress: Sequence[Mapping[str, Any]] | None,
        now: datetime,
    ) -> StoredDossier:
        """Store a dossier as given (validated, but with no transition or create/update
        rules): the portal as changed by hand, for tests."""
        dossier = parse_dossier(data)
        form = dossier.to_portal()
        stored = StoredDossier(
            dossier.MaHoSo, unit_of(dossier.agency), form, canonical_hash(form), now, now
        )
        previous = self.dossiers.get(dossier.MaHoSo)
        if previous is not None:
            stored.created_at = previous.created_at
        if progress is None:
            stored.progress = dict(previous.progress) if previous is not None else {}
        for index, raw in enumerate(progress or []):
            record = parse_progress(raw)
            if record.MaHoSo != dossier.MaHoSo:
                raise RecordInvalid(
                    [FieldIssue(("QuaTrinhXuLy", index, "MaHoSo"), "invalid", "khác mã hồ sơ")]
                )
            stored.progress.setdefault(record.identity_hash(), record.to_portal())
        self.dossiers[stored.ma_ho_so] = stored
        if self.persistence is not None:
            self.persistence.replace_dossier(stored)
        return stored

    def delete_dossier(self, code: str) -> bool:
        removed = self.dossiers.pop(code, None) is not None
        if removed and self.persistence is not None:
            self.persistence.delete_dossiers([code])
        return removed

    def unit_stats(self, units: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for unit in units:
            mine = [d for d in self.dossiers.values() if d.unit == unit]
            stats = self.stats.get(unit, UnitStats())
            by_status = Counter(d.status.value for d in mine)
            out[unit] = {
                "dossiers": len(mine),
                "dossiers_by_status": {s.value: by_status[s.value] for s in DossierStatus},
                "progress_records": sum(len(d.progress) for d in mine),
                "rejected_by_error_code": {str(k): v for k, v in sorted(stats.rejected.items())},
                "duplicates_received": stats.duplicates,
                "regressions_refused": stats.regressions_refused,
            }
        return out

    def known_units(self) -> list[str]:
        units = {a.unit for a in self.accounts.values()}
        units |= {d.unit for d in self.dossiers.values()}
        units |= set(self.stats)
        return sorted(units)


class _Refused(Exception):  # noqa: N818 - an outcome, not an error of the mock
    """An item the portal refuses, with the code and message it answers."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class _Sent:
    """What the journal keeps of an item as sent (whatever happens to it)."""

    ma_ho_so: str | None
    status: str | None
    content_hash: str | None
    occurred_at: str | None

    def ok(self, message: str, *, duplicate: bool = False) -> ItemResult:
        return ItemResult(
            self.ma_ho_so, 0, message, self.status, self.content_hash, self.occurred_at, duplicate
        )

    def refused(self, refused: _Refused) -> ItemResult:
        return ItemResult(
            self.ma_ho_so,
            int(refused.code),
            refused.message,
            self.status,
            self.content_hash,
            self.occurred_at,
        )


_REJECTED = {
    ErrorCode.VALIDATION_FAILED: "dữ liệu không hợp lệ",
    ErrorCode.TRANSITION_REFUSED: "không được phép chuyển trạng thái",
    ErrorCode.UNIT_MISMATCH: "hồ sơ không thuộc đơn vị",
}


def _injected(reject: Rejection | None, sent: _Sent, index: int) -> None:
    """Refuse an item that a ``reject`` fault names, whatever it holds."""
    code = reject(sent.ma_ho_so) if reject is not None else None
    if code is not None:
        reason = _REJECTED.get(code) or MESSAGES.get(code, "")
        raise _Refused(code, f"data[{index}].MaHoSo: {reason} (lỗi giả lập)")


def _sent(raw: Any, status_field: str) -> _Sent:
    if not isinstance(raw, dict):
        return _Sent(None, None, None, None)
    code, status, at = raw.get("MaHoSo"), raw.get(status_field), raw.get("ThoiDiemXuLy")
    return _Sent(
        code if isinstance(code, str) else None,
        status if isinstance(status, str) else None,
        journal_digest(raw),
        at if isinstance(at, str) else None,
    )


def _batch(data: Any) -> list[Any]:
    if not isinstance(data, list) or not data:
        raise PortalError(
            ErrorCode.VALIDATION_FAILED, f"data: phải là danh sách 1..{MAX_BATCH_ITEMS} bản ghi"
        )
    if len(data) > MAX_BATCH_ITEMS:
        raise PortalError(ErrorCode.BATCH_TOO_LARGE)
    return data


def owning_agency(code: str | None) -> str | None:
    """The agency prefixing a well-formed ``MaHoSo``, for fault selectors and journals."""
    return agency_of_dossier(code) if code is not None and is_dossier_code(code) else None


def utcnow() -> datetime:
    return datetime.now(UTC)
