"""Hostile input: schemathesis against every public operation of the OpenAPI schema, in-process.

Each operation gets a bounded number of generated requests (valid and invalid) with credentials
that fit it (an officer for cases, an admin for partner accounts, a partner key for the partner
API), so generation reaches past authentication. Checks: no 5xx and every documented response
matches its schema. The whole run is bounded (< 60 s on the development machine).
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from alerts.users.roles import Rank, Role
from ops.platform.db import session_scope
from tests.factories import make_agency, make_user, token

pytestmark = pytest.mark.slow
EXAMPLES = 15
# Long-lived streams cannot be fuzzed request by request.
SKIP = {"GET /api/v1/feeds/stream"}
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_every_public_operation_survives_generated_input_without_5xx_or_schema_violation(
    database, monkeypatch, redis_client
):
    from alerts.app import create_app
    from alerts.partners import service as partners
    from tests.conftest import clear_caches

    # Readiness without workers is a deliberate 503; here it must answer like everything else.
    monkeypatch.setenv("REUNITE_READY_REQUIRES_WORKERS", "false")
    clear_caches()
    make_agency("Guangzhou PSB")
    make_user("officer1", Role.OFFICER, "Guangzhou PSB")
    make_user("admin1", Role.ADMIN, "Guangzhou PSB", Rank.CONSTABLE)
    with session_scope() as s:
        partner = partners.create_partner(s, "Fuzz Maps", partners.PartnerKind.APP, actor="test")
        key = partners.issue_key(s, partner, list(partners.Scope), actor="test")
    app = create_app()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        officer, admin = token(client, "officer1"), token(client, "admin1")
    partner_auth = {"Authorization": f"Bearer {key}"}

    def auth_for(path: str) -> dict[str, str]:
        if path.startswith(("/api/v1/partner/", "/api/v1/feeds", "/api/v1/photos")):
            return partner_auth
        if path.startswith(
            ("/api/v1/partners", "/api/v1/rules", "/api/v1/agencies", "/api/v1/stats")
        ):
            return admin
        return officer

    failures: list[str] = []
    calls = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label not in SKIP:
            calls += fuzz(operation, label, auth_for(operation.path), failures)
    took = time.monotonic() - started
    redis_client.flushdb()  # generated requests may have queued tasks; no later test sees them
    print(f"schemathesis: {calls} generated requests in {took:.1f}s, {len(failures)} failures")
    assert failures == [], "\n".join(dict.fromkeys(f.splitlines()[0] for f in failures))


def fuzz(operation, label: str, headers: dict[str, str], failures: list[str]) -> int:
    """Run generated requests against one operation; failures are appended; returns the count."""
    calls = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case) -> None:
        nonlocal calls
        calls += 1
        try:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )
        except (Exception, BaseExceptionGroup) as exc:  # recorded: the test fails listing it
            text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
            failures.append(f"{label}: {type(exc).__name__}: {text[:400]}")

    run()
    return calls


XML_PARSERS = {
    ("xml.etree.ElementTree", "fromstring"),
    ("xml.etree.ElementTree", "parse"),
    ("xml.etree.ElementTree", "XMLParser"),
    ("xml.etree.ElementTree", "iterparse"),
    ("xml.dom.minidom", "parseString"),
    ("xml.dom.minidom", "parse"),
    ("xml.sax", "parseString"),
    ("xml.sax", "parse"),
    ("lxml.etree", "fromstring"),
    ("lxml.etree", "parse"),
    ("lxml.etree", "XML"),
}


def xml_parsing_calls(path: Path) -> list[str]:
    """Calls of a stdlib or lxml XML parser in a module (defusedxml's are not listed)."""
    tree = ast.parse(path.read_text())
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            if isinstance(base, ast.Name) and base.id in aliases:
                if (aliases[base.id], node.func.attr) in XML_PARSERS:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_service_code_parses_xml_with_an_entity_expanding_parser():
    # Reunite only writes XML (CAP, Atom). Should it ever read XML from outside (CAP from
    # another authority), it must go through defusedxml, which refuses entity expansion (XML
    # bombs) and external entities; this test names any module that does not.
    sources = [p for d in ("alerts", "channels", "geo", "ops") for p in (ROOT / d).rglob("*.py")]
    assert sources, "source tree not found"
    calls = [c for p in sources for c in xml_parsing_calls(p)]
    assert calls == [], f"XML parsed without defusedxml at: {calls}"


def test_the_xml_guard_spots_a_stdlib_parser_call(tmp_path):
    sample = ROOT / "ops" / "_xml_guard_sample.py"
    sample.write_text("from xml.etree import ElementTree as ET\nET.fromstring(b'<a/>')\n")
    try:
        assert xml_parsing_calls(sample) == ["ops/_xml_guard_sample.py:2"]
    finally:
        sample.unlink()
