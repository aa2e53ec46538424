"""The OpenAPI document is what partners integrate from: /docs and /openapi.json must describe
every field, every refusal and which credential each route takes.

Before, 3 of ~290 fields had a description and none an example, 54 of 60 routes listed no
error response, the bulk upload had no request body, and one HTTPBearer scheme stood for both
user tokens and partner keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import BaseModel, ValidationError

REF = "#/components/schemas/"
# A path parameter that names something, yet whose route never answers 404, and why.
NO_404 = {
    "PUT /api/v1/partner/devices/{external_id}": "an unknown id registers the device",
    "GET /api/v1/photos/{ref}": "an unknown or closed case's photo is 410, never 404",
}
READS = {"get", "head"}


@pytest.fixture(scope="module")
def app():
    from alerts.app import create_app

    return create_app()


@pytest.fixture(scope="module")
def spec(app) -> dict:
    return app.openapi()


def operations(spec: dict) -> Iterator[tuple[str, dict]]:
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            yield f"{method.upper()} {path}", op


def target(spec: dict, ref: str) -> dict:
    return spec["components"]["schemas"][ref.removeprefix(REF)]


def referenced(schema: dict) -> str | None:
    """The component a property stands for: itself, a list of it, or it or null."""
    if "$ref" in schema:
        return schema["$ref"]
    if "$ref" in schema.get("items", {}):
        return schema["items"]["$ref"]
    options = [o for o in schema.get("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        return referenced(options[0])
    return None


def example_of(spec: dict, schema: dict) -> Any:
    """What Swagger UI would show: the property's own example, or one built from the schema
    it refers to."""
    if "examples" in schema:
        return schema["examples"][0]
    if "$ref" in schema:
        return composed(spec, target(spec, schema["$ref"]))
    if schema.get("type") == "array" and "items" in schema:
        return [example_of(spec, schema["items"])]
    options = [o for o in schema.get("anyOf", []) if o.get("type") != "null"]
    if options:
        return example_of(spec, options[0])
    raise AssertionError(f"no example for {schema}")


def composed(spec: dict, schema: dict) -> Any:
    if "properties" not in schema:  # an enum
        return schema["enum"][0]
    return {name: example_of(spec, sub) for name, sub in schema["properties"].items()}


def validator(spec: dict, schema: dict) -> Draft202012Validator:
    """Validates against a schema of the document, with its $refs resolved in it."""
    root = {**schema, "components": spec["components"]}
    return Draft202012Validator(root, format_checker=FormatChecker())


def models() -> dict[str, type[BaseModel]]:
    """Reunite's pydantic models by name (the component names FastAPI gives them)."""
    found: dict[str, list[type[BaseModel]]] = {}
    stack = list(BaseModel.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in {"alerts", "geo", "channels", "ops"}:
            found.setdefault(cls.__name__, []).append(cls)
    return {name: classes[0] for name, classes in found.items() if len(classes) == 1}


def test_every_schema_property_has_a_description_and_an_example(spec):
    missing = []
    for name, schema in spec["components"]["schemas"].items():
        for prop, sub in schema.get("properties", {}).items():
            if not sub.get("description"):
                missing.append(f"{name}.{prop}: no description")
            ref = referenced(sub)
            # A property that is another object schema is exemplified by that schema's fields.
            by_reference = ref is not None and "properties" in target(spec, ref)
            if "examples" not in sub and not by_reference:
                missing.append(f"{name}.{prop}: no example")
    assert missing == [], "\n".join(missing)


def test_every_example_validates_against_its_schema_and_its_model(spec):
    known = models()
    wrong = []
    for name, schema in spec["components"]["schemas"].items():
        for prop, sub in schema.get("properties", {}).items():
            for example in sub.get("examples", []):
                for error in validator(spec, sub).iter_errors(example):
                    wrong.append(f"{name}.{prop} example {example!r}: {error.message}")
        if "properties" not in schema:
            continue
        example = composed(spec, schema)
        for error in validator(spec, schema).iter_errors(example):
            wrong.append(f"{name} example: {error.message}")
        if name in known:
            try:
                known[name].model_validate_json(json.dumps(example))
            except ValidationError as exc:
                wrong.append(f"{name} example refused by the model: {exc}")
    assert wrong == [], "\n".join(wrong)


def test_the_examples_stand_for_the_models_behind_the_schemas(spec):
    # The pydantic check above must not pass by finding no model: only FastAPI's own form
    # body has none.
    unmatched = {
        name for name, s in spec["components"]["schemas"].items() if "properties" in s
    } - set(models())
    assert unmatched == {"Body_issue_token_api_v1_auth_token_post"}


def credential(route: APIRoute) -> tuple[str | None, bool]:
    """Which credential a route takes (UserToken, PartnerKey or None) and whether its
    dependencies can refuse valid credentials (a role check or a partner key scope)."""
    kind, refuses = None, False
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        stack.extend(dep.dependencies)
        name = getattr(dep.call, "__qualname__", "")
        if name == "current_user":
            kind = kind or "UserToken"
        elif name.startswith("require_role."):
            refuses = True
        elif name.startswith("_partner_key."):
            kind, refuses = "PartnerKey", True
    return kind, refuses


def api_routes(app) -> Iterator[tuple[str, APIRoute]]:
    """Every route with its full path (FastAPI keeps included routers unflattened)."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context.path_format, context.original_route


def test_every_route_names_the_credential_it_takes_and_its_refusals(app, spec):
    wrong = []
    checked = set()
    for path, route in api_routes(app):
        kind, refuses = credential(route)
        for method in route.methods:
            op = spec["paths"].get(path, {}).get(method.lower())
            if op is None:  # the console and the docs pages are not in the document
                continue
            label = f"{method} {path}"
            checked.add(label)
            schemes = [name for entry in op.get("security", []) for name in entry]
            if schemes != ([kind] if kind else []):
                wrong.append(f"{label}: security {schemes}, takes {kind}")
            if kind is None:
                continue
            codes = set(op["responses"])
            if "401" not in codes:
                wrong.append(f"{label}: no 401")
            # A read token may GET; anything else, a role check or a key scope can refuse.
            if (refuses or method.lower() not in READS) and "403" not in codes:
                wrong.append(f"{label}: no 403")
            if kind == "PartnerKey" and "429" not in codes:
                wrong.append(f"{label}: no 429 (partner rate limit)")
    assert checked == {label for label, _op in operations(spec)}
    assert wrong == [], "\n".join(wrong)


def test_the_two_credentials_are_separate_schemes(spec):
    schemes = spec["components"]["securitySchemes"]
    assert set(schemes) == {"UserToken", "PartnerKey"}
    for scheme in schemes.values():
        assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert "rut_" in schemes["UserToken"]["description"]
    assert "/api/v1/auth/token" in schemes["UserToken"]["description"]
    assert "rk_" in schemes["PartnerKey"]["description"]


def test_routes_with_a_path_parameter_document_404(spec):
    missing = []
    for label, op in operations(spec):
        named = [p for p in op.get("parameters", []) if p["in"] == "path"]
        if named and label not in NO_404 and "404" not in op["responses"]:
            missing.append(label)
    assert missing == []
    for label in NO_404:
        assert label in dict(operations(spec)), f"stale exemption {label}"


def test_routes_with_a_body_document_413_and_every_refusal_has_the_error_body(spec):
    wrong = []
    for label, op in operations(spec):
        responses = op["responses"]
        if "requestBody" in op and "413" not in responses:
            wrong.append(f"{label}: takes a body, no 413")
        for code, response in responses.items():
            if not code.startswith("4") and code != "503":
                continue
            if not response.get("description"):
                wrong.append(f"{label} {code}: no description")
            content = response.get("content", {})
            if set(content) == {"text/html"}:  # the public case page's own 404 page
                continue
            schema = content.get("application/json", {}).get("schema", {})
            if code != "503" and schema.get("$ref") != REF + "Error":
                wrong.append(f"{label} {code}: body is not the shared Error")
        if "401" in responses and "WWW-Authenticate" not in responses["401"].get("headers", {}):
            wrong.append(f"{label} 401: no WWW-Authenticate header")
        if "429" in responses and "Retry-After" not in responses["429"].get("headers", {}):
            wrong.append(f"{label} 429: no Retry-After header")
    assert wrong == [], "\n".join(wrong)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_the_bulk_upload_documents_json_and_ndjson_bodies_the_parser_reads(spec):
    from geo.devices import ingest
    from geo.devices.schemas import LocationRow

    body = spec["paths"]["/api/v1/partner/devices/bulk"]["post"]["requestBody"]
    content = body["content"]
    assert {"application/json", "application/x-ndjson"} <= set(content)
    forms = content["application/json"]["schema"]["oneOf"]
    assert {"type": "array", "items": {"$ref": REF + "LocationRow"}}.items() <= forms[0].items()
    assert target(spec, forms[1]["$ref"])["properties"]["devices"]["items"] == {
        "$ref": REF + "LocationRow"
    }
    assert content["application/x-ndjson"]["x-itemSchema"] == {"$ref": REF + "LocationRow"}
    for media_type, documented in content.items():
        assert documented["examples"], media_type
        for example in documented["examples"].values():
            value = example["value"]
            if media_type == "application/json":
                assert not list(validator(spec, documented["schema"]).iter_errors(value))
                raw = json.dumps(value).encode()
            else:
                raw = value.encode()
            rows = ingest.parse_payload(raw, media_type, 50_000)
            assert len(rows) == 2
            for row in rows:
                LocationRow.model_validate(row, from_attributes=True)  # a dict or a PlainRow
