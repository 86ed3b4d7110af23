"""Each service's API description can act (issue 14, item 7): it declares the bearer scheme on the
operations that take a token (the Authorize button of /docs), none on health, and the two NDJSON
uploads describe their rows. Built from the apps as create_app makes them, without starting them."""
import pytest

from contracts.topics import SERVICES
from runtime.app import create_app, load_definition
from runtime.settings import Settings
from services.intake.api.households import HouseholdIn
from services.intake.api.warnings import WarningIn

# /declare: the notifier's declaration page, a web page whose household token comes in its link (it
# checks the token itself and answers an HTML page, not a problem document). /console: the staff
# console, the same page for everyone (the token stays in the browser, sent to the APIs it calls).
OPEN_WITHOUT_A_TOKEN = {"/healthz", "/readyz", "/metrics", "/declare", "/console"}


def _description(service: str, **settings) -> dict:
    return create_app(load_definition(service), Settings(**settings)).openapi()


def _operations(doc: dict):
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_that_takes_a_token_declares_the_bearer_scheme(service):
    doc = _description(service)
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for method, path, operation in _operations(doc):
        if path in OPEN_WITHOUT_A_TOKEN:
            assert "security" not in operation, (method, path)
        else:
            assert path.startswith("/v1/"), (method, path)
            assert {"bearer": []} in operation.get("security", []), f"{method} {path} declares no bearer token"
    behind_a_token = _description(service, metrics_access="token")
    assert behind_a_token["paths"]["/metrics"]["get"]["security"] == [{"bearer": []}]


def test_a_declaration_takes_the_households_token_as_bearer_or_in_its_link():
    declare = _description("intake")["paths"]["/v1/declarations"]["post"]
    assert declare["security"] == [{"bearer": []}, {}]
    assert any(p["name"] == "token" and p["in"] == "query" for p in declare["parameters"])


@pytest.mark.parametrize("path, row_model", [("/v1/households:import", HouseholdIn), ("/v1/warnings:batch", WarningIn)])
def test_ndjson_uploads_describe_their_rows(path, row_model):
    doc = _description("intake")
    body = doc["paths"][path]["post"].get("requestBody")
    assert body is not None and body["required"] is True, f"{path} describes no request body"
    assert list(body["content"]) == ["application/x-ndjson"]
    ndjson = body["content"]["application/x-ndjson"]
    reference = ndjson["schema"]["$ref"]
    assert reference.startswith("#/components/schemas/")
    row_schema = doc["components"]["schemas"][reference.removeprefix("#/components/schemas/")]
    assert set(row_schema["properties"]) == set(row_model.model_fields)
    lines = ndjson["example"].splitlines()
    assert lines and all(row_model.model_validate_json(line) for line in lines), "the example is rows as sent, one a line"
