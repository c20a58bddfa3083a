"""The mock documents itself: /openapi.json (contract and control routes, schemas with
examples that the mock really accepts) and /docs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.mockportal.testing import MockPortalHandle
from tests.domain.factories import (
    ALWAYS_REQUIRED,
    DOSSIER_FIELDS,
    PROGRESS_FIELDS,
    PROGRESS_REQUIRED,
)
from tests.mockportal.helpers import H26, PortalClient

CONTRACT_PATHS = ("/dvcqg/auth", "/dvcqg/integration", "/dvcqg/share")
CONTROL_PATHS = {
    "/_mock/reset": {"post"},
    "/_mock/seed": {"post"},
    "/_mock/dossiers": {"get"},
    "/_mock/dossiers/{ma_ho_so}": {"get", "put", "delete"},
    "/_mock/journal": {"get"},
    "/_mock/journal.ndjson": {"get"},
    "/_mock/faults": {"get", "post", "delete"},
    "/_mock/stats": {"get"},
    "/_mock/conformance": {"get"},
    "/_mock/settings": {"get", "patch"},
}


@pytest.fixture
def document(mock_portal: MockPortalHandle) -> dict[str, Any]:
    response = httpx.get(f"{mock_portal.url}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def examples_of(document: dict[str, Any], path: str) -> dict[str, Any]:
    content = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    examples: dict[str, Any] = content["examples"]
    return {name: example["value"] for name, example in examples.items()}


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_the_document_lists_the_contract_and_control_paths(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in CONTRACT_PATHS:
        assert set(paths[path]) == {"post"}, path
        assert paths[path]["post"]["tags"] == ["contract"]
    for path, methods in CONTROL_PATHS.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
        for operation in paths[path].values():
            assert operation["tags"] == ["control"]


@pytest.mark.parametrize("path", CONTRACT_PATHS)
def test_contract_routes_document_body_schema_examples_and_answers(
    document: dict[str, Any], path: str
) -> None:
    operation = document["paths"][path]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    content = body["content"]["application/json"]
    assert content["schema"]  # a $ref or a oneOf of $refs
    assert content["examples"]
    for example in content["examples"].values():
        assert isinstance(example["value"], dict) and example["value"]
    responses = operation["responses"]
    assert {"200", "400", "401", "413", "429", "502", "503", "504"} <= set(responses)
    assert "Retry-After" in responses["429"]["headers"]
    assert responses["200"]["content"]["application/json"]["examples"]


def test_components_hold_the_record_schemas_in_contract_order(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in (
        "Dossier",
        "ProgressRecord",
        "DongBoHoSoMCRequest",
        "CapNhatTienDoHoSoMCRequest",
        "TraCuuHoSoRequest",
        "BatchAnswer",
        "ErrorAnswer",
    ):
        assert name in schemas, name
    dossier, progress = schemas["Dossier"], schemas["ProgressRecord"]
    assert tuple(dossier["properties"]) == DOSSIER_FIELDS
    assert set(dossier["required"]) == set(ALWAYS_REQUIRED)
    assert dossier["additionalProperties"] is False
    assert tuple(progress["properties"]) == PROGRESS_FIELDS
    assert set(progress["required"]) == set(PROGRESS_REQUIRED)
    assert progress["additionalProperties"] is False
    request = schemas["DongBoHoSoMCRequest"]
    assert request["properties"]["isUpdating"]["enum"] == ["True", "False"]
    assert request["properties"]["data"]["maxItems"] == 100


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    prefix = "#/components/schemas/"
    found = set(refs(document))
    assert found
    assert {ref for ref in found if not ref.startswith(prefix)} == set()
    assert {ref for ref in found if ref.removeprefix(prefix) not in schemas} == set()


def test_the_documented_examples_are_accepted_by_the_mock(
    document: dict[str, Any], client: PortalClient
) -> None:
    for path in ("/dvcqg/integration", "/dvcqg/share"):  # create, update, progress, then reads
        for name, example in examples_of(document, path).items():
            assert example["madonvi"] == H26
            body = example | {"session": client.session}
            response = client.http.post(path, json=body, headers={"dstcode": H26})
            assert response.status_code == 200, (name, response.text)
            answer = response.json()
            assert answer["error_code"] == 0, (name, answer)
            if name == "bulk":
                assert answer["khongtimthay"] == []
            if name == "one":
                assert answer["data"]["TrangThaiHoSo"] == "4"  # the update example applied
                assert len(answer["data"]["QuaTrinhXuLy"]) == 1


def test_the_auth_example_logs_in(document: dict[str, Any], mock_portal: MockPortalHandle) -> None:
    [example] = examples_of(document, "/dvcqg/auth").values()
    response = httpx.post(f"{mock_portal.url}/dvcqg/auth", json=example, headers={"dstcode": H26})
    assert (response.status_code, response.json()["error_code"]) == (200, 0)


def test_docs_answer(mock_portal: MockPortalHandle) -> None:
    response = httpx.get(f"{mock_portal.url}/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "/openapi.json" in response.text


def test_the_document_is_public_while_the_control_api_is_not(
    mock_portal: MockPortalHandle,
) -> None:
    assert httpx.get(f"{mock_portal.url}/openapi.json").status_code == 200
    assert httpx.get(f"{mock_portal.url}/_mock/stats").status_code == 401
