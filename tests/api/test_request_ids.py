"""Request ids: every answer carries one, a caller's sane id is kept, and every log line
written while the request is handled names it."""

from __future__ import annotations

import json
from io import StringIO

from tests.api.conftest import H26, Api
from tests.factories import dossier_json


def _lines(logs: StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]


async def test_a_callers_id_is_kept_and_logged(api: Api, captured_logs: StringIO) -> None:
    key = await api.key(H26, ["ingest"])
    answer = await api.client.post(
        "/api/v1/dossiers",
        json={"dossiers": [dossier_json("000.00.53.H26-240125-00001")]},
        headers=api.auth(key) | {"X-Request-ID": "igate-7f3a.42"},
    )
    assert answer.status_code == 202
    assert answer.headers["X-Request-ID"] == "igate-7f3a.42"
    mine = [line for line in _lines(captured_logs) if line.get("request_id") == "igate-7f3a.42"]
    assert any(
        line.get("event") == "request"
        and line.get("path") == "/api/v1/dossiers"
        and line.get("status") == 202
        for line in mine
    ), mine


async def test_an_insane_id_is_replaced_and_errors_get_one_too(
    api: Api, captured_logs: StringIO
) -> None:
    bad = "x" * 65
    answer = await api.client.get(
        f"/api/v1/units/{H26}/sync", headers={"X-Request-ID": bad}
    )  # no key: 401, still with an id
    assert answer.status_code == 401
    given = answer.headers["X-Request-ID"]
    assert given != bad
    assert len(given) == 32
    other = await api.client.get(f"/api/v1/units/{H26}/sync")
    assert other.headers["X-Request-ID"] != given
    assert any(
        line.get("request_id") == given and line.get("status") == 401
        for line in _lines(captured_logs)
    )
    assert bad not in captured_logs.getvalue()
