"""schemathesis against the service's own OpenAPI schema: no 5xx, responses match the schema.

Cases come from schemathesis' hypothesis strategies, one test per operation; its pytest plugin
is not used (it does not work with this pytest), so the loop is driven here.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (the 'service' extra)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from memp.embed import HashingEmbedder  # noqa: E402
from memp.server.rest import ServiceConfig, create_app  # noqa: E402
from memp.store import SQLiteStore  # noqa: E402
from tests.server.conftest import TOKENS, auth  # noqa: E402


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value):
    # The import body is JSON lines; a generated string is sent as its UTF-8 bytes.
    return str(value).encode("utf-8", "surrogatepass")


def _schema(tmp_path):
    store = SQLiteStore(tmp_path / "st.db")
    app = create_app(ServiceConfig(store=store, tokens=TOKENS, embedder=HashingEmbedder()))
    return schemathesis.openapi.from_asgi("/openapi.json", app), store


def _operations():
    import tempfile
    from pathlib import Path

    schema, store = _schema(Path(tempfile.mkdtemp()))
    labels = [op.ok().label for op in schema.get_all_operations()]
    store.close()
    return labels


@pytest.mark.parametrize("label", _operations())
def test_operation_conforms_to_its_schema(label, tmp_path):
    schema, store = _schema(tmp_path)
    operation = next(op.ok() for op in schema.get_all_operations() if op.ok().label == label)

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def check(case):
        response = case.call(headers=auth())
        assert response.status_code < 500, response.text
        # memp's validators are stricter than JSON Schema can say (e.g. "task text is not blank"),
        # so a schema-valid request may rightly get 422: that check is left out.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    try:
        check()
    finally:
        store.close()
