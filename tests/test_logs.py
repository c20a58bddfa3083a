"""Logs are JSON and never carry personal data in clear (contract §8)."""

from __future__ import annotations

import io
import json
import logging

from app.logs import get_logger
from tests.factories import dossier_json

ID_NUMBER = "001204567845"
PHONE = "0912345678"
EMAIL = "an.nguyen@example.vn"
NAME = "Nguyễn Văn An"


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_logged_dossier_is_masked(captured_logs: io.StringIO) -> None:
    record = dossier_json(ChuHoSo=NAME, SoGiayToChuHoSo=ID_NUMBER, SoDienThoai=PHONE, Email=EMAIL)
    get_logger("test").info("dossier refused", dossier=record, ma_ho_so=record["MaHoSo"])
    text = captured_logs.getvalue()
    for secret in (ID_NUMBER, PHONE, EMAIL, NAME, "Nguyễn"):
        assert secret not in text
    [event] = lines(captured_logs)
    assert event["event"] == "dossier refused"
    assert event["ma_ho_so"] == "000.00.53.H26-240125-00001"  # codes stay readable
    dossier = event["dossier"]
    assert isinstance(dossier, dict)
    assert dossier["SoGiayToChuHoSo"] == "0012******45"
    assert dossier["NgayTiepNhan"] == "20240125083000"  # dates stay readable


def test_source_records_in_any_dialect_are_masked(captured_logs: io.StringIO) -> None:
    get_logger("test").warning(
        "bad records",
        igate={
            "applicant": {
                "data": {
                    "fullname": NAME,
                    "identityNumber": ID_NUMBER,
                    "phoneNumber": PHONE,
                    "email": EMAIL,
                }
            }
        },
        opencps=[{"applicantName": NAME, "applicantIdNo": ID_NUMBER, "contactTelNo": PHONE}],
        dvclt={"hoTen": NAME, "soDinhDanh": ID_NUMBER, "soDienThoai": PHONE},
    )
    text = captured_logs.getvalue()
    for secret in (ID_NUMBER, PHONE, EMAIL, "Nguyễn"):
        assert secret not in text


def test_exception_texts_and_stdlib_messages_are_scrubbed(captured_logs: io.StringIO) -> None:
    log = get_logger("test")
    try:
        raise ValueError(f"SoGiayToChuHoSo {ID_NUMBER} does not match, contact {EMAIL}")
    except ValueError:
        log.exception("validation crashed")
    logging.getLogger("uvicorn.error").error("client %s sent %s", EMAIL, PHONE)
    text = captured_logs.getvalue()
    for secret in (ID_NUMBER, PHONE, EMAIL):
        assert secret not in text
    events = lines(captured_logs)
    assert "0012******45" in str(events[0]["exception"])
    assert events[1]["logger"] == "uvicorn.error"


def test_credentials_are_never_logged(captured_logs: io.StringIO) -> None:
    get_logger("test").info("auth", password="hunter2", session="tok-123", client_secret="cs")
    text = captured_logs.getvalue()
    assert "hunter2" not in text and "tok-123" not in text and '"cs"' not in text


def test_libraries_that_echo_records_stay_quiet_even_at_debug(captured_logs: io.StringIO) -> None:
    """SQL drivers and HTTP clients log parameters and bodies at DEBUG: never let them."""
    import logging  # noqa: PLC0415

    for name in ("aiosqlite", "sqlalchemy.engine", "httpcore", "httpx"):
        logging.getLogger(name).debug("executing INSERT ... ('Nguyễn Văn An', '0970661')")
    assert "Nguyễn" not in captured_logs.getvalue()
    logging.getLogger("app.anything").debug("still logged")
    assert "still logged" in captured_logs.getvalue()
