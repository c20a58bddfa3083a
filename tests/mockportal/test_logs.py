"""Contract §8: the mock portal's logs never carry personal data in clear.

The mock runs in a thread of this process, so its log events reach the root logger
configured here."""

from __future__ import annotations

import io
import json

from app.domain.codes import MAX_BODY_BYTES
from app.mockportal.testing import MockPortalControl
from tests.domain.factories import valid_progress
from tests.factories import dossier_json
from tests.mockportal.helpers import H26, PortalClient, item_codes

CODE = "000.00.53.H26-240125-00001"
CODE_2 = "000.00.53.H26-240125-00002"
CODE_3 = "000.00.53.H26-240125-00003"

NAME = "Phạm Thị Hồng Nhung"
ID_NUMBER = "079204001234"
PHONE = "0987654321"
EMAIL = "hong.nhung@example.vn"
FAX = "02838291234"
BAD_ID = "07920400123X"
BAD_EMAIL = "hong.nhung@@example.vn"
SECRETS = (NAME, "Hồng Nhung", ID_NUMBER, PHONE, EMAIL, FAX, BAD_ID, BAD_EMAIL, "hong.nhung")

PERSONAL = {
    "ChuHoSo": NAME,
    "SoGiayToChuHoSo": ID_NUMBER,
    "SoDienThoai": PHONE,
    "Email": EMAIL,
    "Fax": FAX,
}


def events(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def assert_no_personal_data(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def test_requests_with_personal_data_leave_none_in_the_logs(
    captured_logs: io.StringIO, client: PortalClient, control: MockPortalControl
) -> None:
    dossier = dossier_json(CODE, "4", **PERSONAL)
    assert item_codes(client.create(dossier)) == [0]
    assert item_codes(client.create(dossier)) == [-3]
    assert item_codes(client.update(dossier | {"GhiChu": "cập nhật"})) == [0]
    rejected = client.create(
        dossier_json(CODE_2, "4", **(PERSONAL | {"SoGiayToChuHoSo": BAD_ID})),
        dossier_json(CODE_3, "4", **(PERSONAL | {"Email": BAD_EMAIL})),
    )
    assert [item["message"].split(":")[0] for item in rejected["data"]] == [
        "data[0].SoGiayToChuHoSo",
        "data[1].Email",
    ]
    client.progress(valid_progress(MaHoSo=CODE, NguoiXuLy=NAME))
    found = client.lookup(CODE)  # the answer carries the personal data; the logs must not
    assert found["data"]["SoGiayToChuHoSo"] == ID_NUMBER
    client.lookup_many([CODE, CODE_2])
    assert client.auth(password=EMAIL).status_code == 401
    client.login()
    # Refused before any parsing: malformed and oversized bodies.
    truncated = json.dumps({"session": client.session, "data": [dossier]})[:-5].encode()
    response = client.http.post("/dvcqg/integration", content=truncated, headers={"dstcode": H26})
    assert response.status_code == 400
    oversized = dossier_json(CODE_2, **(PERSONAL | {"GhiChu": "x" * MAX_BODY_BYTES}))
    response = client.call("integration", "DongBoHoSoMC", isUpdating="False", data=[oversized])
    assert response.status_code == 413

    text = captured_logs.getvalue()
    assert_no_personal_data(text)
    assert client.session is not None and client.session not in text
    logged = [e for e in events(captured_logs) if e.get("logger") == "mockportal"]
    # One event per request (the fixture's login included): the logs were really captured_logs.
    assert len(logged) == control.journal()["total"] >= 11
    assert all(e["event"] == "request" for e in logged)
    assert {e["status"] for e in logged} == {200, 400, 401, 413}


def test_the_journal_export_carries_no_personal_data(
    client: PortalClient, control: MockPortalControl
) -> None:
    client.create(dossier_json(CODE, "4", **PERSONAL))
    client.create(dossier_json(CODE_2, "4", **(PERSONAL | {"Email": BAD_EMAIL})))
    client.progress(valid_progress(MaHoSo=CODE, NguoiXuLy=NAME))
    client.lookup(CODE)
    lines, dropped = control.journal_ndjson()
    assert dropped == 0 and len(lines) == 5
    assert_no_personal_data("\n".join(lines))
    assert_no_personal_data(json.dumps(control.journal(), ensure_ascii=False))
