"""The REST service: the agent loop over HTTP, curation, tokens, limits and error bodies."""

from __future__ import annotations

import json

import pytest

from tests.conftest import clean_apple_trajectory
from tests.server.conftest import TOKEN_B, auth, make_client


def _record(client, trajectory, token=None, mode="update"):
    r = client.post(f"/v1/trajectories?mode={mode}", json=trajectory.model_dump(mode="json"),
                    headers=auth(*(token,) if token else ()))
    assert r.status_code == 201, r.text
    return r.json()


def test_health_needs_no_token(client):
    r = client.get("/v1/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_agent_loop_record_retrieve_report(client, sqlite_store):
    added = _record(client, clean_apple_trajectory())["added"]
    assert len(added) == 1
    r = client.post("/v1/retrieve", json={"task": "put a clean apple in the fridge", "k": 2}, headers=auth())
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert [h["ref"] for h in hits] == added
    assert "Script:" in hits[0]["rendered"] and "embedding" not in hits[0]["procedure"]
    # The run that used it failed: its use is counted and (adjustment) the procedure is revised.
    failed = clean_apple_trajectory(success=False)
    r = client.post("/v1/outcomes", json={"trajectory": failed.model_dump(mode="json"), "used": added},
                    headers=auth())
    assert r.status_code == 201, r.text
    pid = added[0].split("@")[0]
    assert sqlite_store.get("team-a", pid, 1).stats.uses == 1
    assert r.json()["revised"] == [f"{pid}@v2"]
    history = client.get(f"/v1/procedures/{pid}/history", headers=auth()).json()
    assert [v["version"] for v in history["versions"]] == [1, 2]
    assert [e["kind"] for e in history["events"]] == ["created", "used", "revised"]


def test_an_outcome_sent_again_is_counted_once(client, sqlite_store):
    added = _record(client, clean_apple_trajectory())["added"]
    body = {"trajectory": clean_apple_trajectory(success=False, traj_id="retry-1").model_dump(mode="json"),
            "used": added}
    first = client.post("/v1/outcomes", json=body, headers=auth())
    again = client.post("/v1/outcomes", json=body, headers=auth())  # a client retrying after a timeout
    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["revised"] and again.json()["revised"] == []
    assert "already recorded" in again.json()["skipped"]
    pid = added[0].split("@")[0]
    assert sqlite_store.get("team-a", pid).stats.uses == 1
    assert [e.kind for e in sqlite_store.events("team-a", pid)] == ["created", "used", "revised"]


@pytest.mark.parametrize("strategy", ["query", "avefact", "hybrid", "random"])
def test_every_strategy_can_be_asked_for(client, strategy):
    _record(client, clean_apple_trajectory())
    r = client.post("/v1/retrieve", json={"task": {"text": "put a clean apple in fridge"},
                                          "strategy": strategy, "k": 1}, headers=auth())
    assert r.status_code == 200, r.text
    assert len(r.json()["hits"]) == 1 and r.json()["hits"][0]["retriever"] == strategy


def test_list_show_deprecate_restore(client):
    for obj in ("apple", "mug", "egg"):
        _record(client, clean_apple_trajectory(obj=obj))
    page = client.get("/v1/procedures?limit=2", headers=auth()).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = client.get("/v1/procedures?limit=2&offset=2", headers=auth()).json()["items"]
    pid = rest[0]["id"]
    assert client.get(f"/v1/procedures/{pid}", headers=auth()).json()["key"] == rest[0]["key"]
    r = client.post(f"/v1/procedures/{pid}/deprecate", json={"reason": "wrong"}, headers=auth())
    assert r.status_code == 200 and r.json()["status"] == "deprecated"
    again = client.post(f"/v1/procedures/{pid}/deprecate", json={"reason": "wrong"}, headers=auth())
    assert again.status_code == 422 and "already deprecated" in again.json()["error"]["message"]
    assert client.get("/v1/procedures?status=deprecated", headers=auth()).json()["total"] == 1
    r = client.post(f"/v1/procedures/{pid}/restore", json={"reason": "fine"}, headers=auth())
    assert r.json()["status"] == "active"
    typed = client.get("/v1/procedures?task_type=pick_clean_then_place_in_recep", headers=auth()).json()
    assert len(typed["items"]) == 3 and typed["total"] == 3


def test_export_import_between_namespaces(client):
    _record(client, clean_apple_trajectory())
    r = client.get("/v1/export", headers=auth())
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    r2 = client.post("/v1/import", content=r.content, headers=auth(TOKEN_B))
    assert r2.status_code == 201, r2.text
    assert r2.json()["procedures"] == 1
    assert client.get("/v1/procedures", headers=auth(TOKEN_B)).json()["total"] == 1
    bad = client.post("/v1/import", content=b'{"type": "procedure"}\nnot json\n', headers=auth(TOKEN_B))
    assert bad.status_code == 422 and "line 2" in bad.json()["error"]["message"]


def test_tokens_never_cross_namespaces(client):
    added = _record(client, clean_apple_trajectory())["added"]
    pid = added[0].split("@")[0]
    assert client.get(f"/v1/procedures/{pid}", headers=auth(TOKEN_B)).status_code == 404
    assert client.post("/v1/retrieve", json={"task": "put a clean apple in fridge"},
                       headers=auth(TOKEN_B)).json()["hits"] == []
    r = client.post("/v1/outcomes", json={"trajectory": clean_apple_trajectory().model_dump(mode="json"),
                                          "used": added}, headers=auth(TOKEN_B))
    assert r.status_code == 404
    assert client.post(f"/v1/procedures/{pid}/deprecate", json={"reason": "x"},
                       headers=auth(TOKEN_B)).status_code == 404
    assert b"apple" not in client.get("/v1/export", headers=auth(TOKEN_B)).content


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
def test_missing_or_wrong_token_is_401(client, headers):
    r = client.post("/v1/retrieve", json={"task": "x"}, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "unauthorized" and "Bearer" in r.json()["error"]["message"]


def test_errors_are_structured(client):
    r = client.get("/v1/procedures/nope", headers=auth())
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    r = client.post("/v1/trajectories", json={"task": {"text": ""}}, headers=auth())
    assert r.status_code == 422 and "task text is empty" in r.json()["error"]["message"]
    r = client.post("/v1/retrieve", content=b"{not json", headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_input"
    r = client.post("/v1/outcomes", json={"trajectory": {"task": {"text": "t"}}, "used": ["x@vz"]}, headers=auth())
    assert r.status_code == 422 and "bad procedure ref" in r.json()["error"]["message"]
    r = client.get("/v1/no-such-route", headers=auth())
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


def test_oversized_bodies_are_413(sqlite_store):
    with make_client(sqlite_store, max_body_bytes=2000) as small:
        big = clean_apple_trajectory().model_dump(mode="json")
        big["steps"][0]["observation"] = "x" * 3000
        r = small.post("/v1/trajectories", json=big, headers=auth())
        assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"

        def chunks():  # no Content-Length: the limit must hold while streaming too
            for _ in range(10):
                yield b"x" * 500

        r = small.post("/v1/import", content=chunks(), headers=auth())
        assert r.status_code == 413
    assert sqlite_store.namespaces() == []


def test_openapi_schema_documents_the_api(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/v1/trajectories", "/v1/retrieve", "/v1/outcomes", "/v1/procedures",
                 "/v1/procedures/{procedure_id}/history", "/v1/export", "/v1/import", "/v1/health"):
        assert path in paths
    assert "HTTPBearer" in json.dumps(schema["components"]["securitySchemes"])


def _stored_state(store):
    return store.generation(), store.get_trajectory("team-a", "run-1").model_dump(mode="json")


@pytest.mark.parametrize("endpoint", ["/v1/trajectories", "/v1/trajectories?mode=add", "/v1/outcomes"])
def test_a_stored_trajectory_id_with_other_content_is_409_never_replaced(client, sqlite_store, endpoint):
    _record(client, clean_apple_trajectory(traj_id="run-1"))
    before = _stored_state(sqlite_store)
    other = clean_apple_trajectory("mug", "cabinet", success=False, traj_id="run-1").model_dump(mode="json")
    body = {"trajectory": other, "used": []} if endpoint == "/v1/outcomes" else other
    r = client.post(endpoint, json=body, headers=auth())
    assert r.status_code == 409 and r.json()["error"]["type"] == "conflict", r.text
    assert "run-1" in r.json()["error"]["message"]
    assert _stored_state(sqlite_store) == before
    # Sending the very same run again is not a conflict.
    _record(client, clean_apple_trajectory(traj_id="run-1"))


def test_a_namespace_survives_a_refused_import_of_wrong_shaped_vectors(client, sqlite_store):
    _record(client, clean_apple_trajectory())
    lines = [json.loads(x) for x in client.get("/v1/export", headers=auth()).text.splitlines()]
    for record in lines:
        if record.get("type") == "procedure":
            record["procedure"]["embedding"] = record["procedure"]["embedding"][:10]
    before = sqlite_store.generation()
    r = client.post("/v1/import", content="\n".join(json.dumps(x) for x in lines), headers=auth(TOKEN_B))
    assert r.status_code == 422 and "10 values, not the 384" in r.json()["error"]["message"], r.text
    assert sqlite_store.generation() == before and sqlite_store.count("team-b") == 0
    r = client.post("/v1/retrieve", json={"task": "put a clean apple in fridge"}, headers=auth(TOKEN_B))
    assert r.status_code == 200 and r.json()["hits"] == []
    assert client.post("/v1/trajectories", json=clean_apple_trajectory().model_dump(mode="json"),
                       headers=auth(TOKEN_B)).status_code == 201


def test_the_deepest_trajectory_accepted_round_trips_through_export_and_import(client):
    from memp.storable import MAX_DEPTH

    deep: object = "bottom"
    for _ in range(MAX_DEPTH - 2):  # the body, its metadata, then the lists: MAX_DEPTH levels
        deep = [deep]
    run = clean_apple_trajectory().model_dump(mode="json") | {"metadata": {"x": deep}}
    _record(client, type(clean_apple_trajectory()).model_validate(run))
    too_deep = run | {"id": "deeper", "metadata": {"x": [deep]}}
    r = client.post("/v1/trajectories", json=too_deep, headers=auth())
    assert r.status_code == 422 and f"more than {MAX_DEPTH} levels" in r.json()["error"]["message"]
    export = client.get("/v1/export", headers=auth()).content
    r = client.post("/v1/import", content=export, headers=auth(TOKEN_B))
    assert r.status_code == 201, r.text
