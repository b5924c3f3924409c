"""The endpoints behind the inspector page: sorting and filters, diffs, trajectories, deprecations,
experiments, and the page itself. The browser test (test_inspector_browser.py) drives the page."""

from __future__ import annotations

import json

import pytest

from memp.embed import HashingEmbedder
from memp.memory import Memory
from memp.server.inspector import line_diff
from memp.store import SQLiteStore, open_store
from memp.types import Procedure, Task
from tests.conftest import clean_apple_trajectory
from tests.server.conftest import TOKEN_A, TOKEN_B, auth, make_client


def seed(store, namespace: str = "team-a") -> dict[str, str]:
    """Three procedures; the apple one revised once (two versions), the egg one deprecated,
    the mug one used twice (one success; apple v2 keeps v1's failed use). Returns {object: procedure id}."""
    mem = Memory(store, namespace=namespace, embedder=HashingEmbedder(), update="adjustment")
    for obj in ("apple", "mug", "egg"):
        mem.update(clean_apple_trajectory(obj=obj))
    ids = {obj: next(p.id for p in store.list(namespace, limit=10) if f" {obj} " in p.key)
           for obj in ("apple", "mug", "egg")}
    apple = mem.retrieve(Task(text="put a clean apple in fridge."), k=1)
    assert apple[0].procedure.id == ids["apple"]
    report = mem.update(clean_apple_trajectory(success=False), used=apple)
    assert report.revised == [f"{ids['apple']}@v2"], report
    head = store.get(namespace, ids["mug"])
    store.record_use(namespace, head.id, head.version, success=True)
    store.record_use(namespace, head.id, head.version, success=False)
    store.set_status(namespace, ids["egg"], "deprecated", reason="failed every use in the seed")
    return ids


@pytest.fixture(params=["sqlite", "postgres"])
def seeded(request, tmp_path):
    """(client, ids, store) over each SQL store: the inspector's queries are written per dialect."""
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "svc.db")
    else:
        store = open_store(request.getfixturevalue("pg_url"))
    ids = seed(store)
    with make_client(store) as c:
        yield c, ids, store
    store.close()


def _get(client, path, token=TOKEN_A):
    r = client.get(path, headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()


def test_page_and_assets_are_served_without_a_token(client):
    page = client.get("/")
    assert page.status_code == 200 and "memp inspector" in page.text
    assert 'src="/static/app.js"' in page.text
    for asset in ("app.js", "core.js", "dom.js", "views.js", "experiments.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200, asset
    assert client.get("/static/../rest.py").status_code == 404
    # The page is not part of the API schema.
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_summary_names_the_tokens_namespace_and_facets(seeded):
    client, _, _ = seeded
    s = _get(client, "/v1/inspector/summary")
    assert s["namespace"] == "team-a" and (s["active"], s["deprecated"]) == (2, 1)
    assert s["task_types"] == ["pick_clean_then_place_in_recep"]
    assert s["builders"] == ["proceduralization"] and s["experiments"] is False
    assert _get(client, "/v1/inspector/summary", TOKEN_B)["active"] == 0


def test_every_inspector_endpoint_refuses_a_wrong_token(seeded):
    client, ids, _ = seeded
    for path in ("/v1/inspector/summary", f"/v1/procedures/{ids['apple']}/diff?a=1&b=2",
                 "/v1/deprecations", "/v1/experiments", "/v1/procedures?sort=uses"):
        r = client.get(path, headers=auth("not-a-real-token-000000"))
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized", path


def test_list_sorts_by_uses_and_success_rate_and_filters_by_builder(seeded):
    client, ids, _ = seeded
    by_uses = _get(client, "/v1/procedures?sort=uses")
    assert by_uses["total"] == 3
    assert [p["id"] for p in by_uses["items"]] == [ids["mug"], ids["apple"], ids["egg"]]
    ascending = _get(client, "/v1/procedures?sort=uses&order=asc")["items"]
    assert ascending[-1]["id"] == ids["mug"]
    # apple v2 inherits v1's failed use (0%), mug is at 50%, egg was never used: last either way.
    for order, expected in (("asc", ["apple", "mug", "egg"]), ("desc", ["mug", "apple", "egg"])):
        items = _get(client, f"/v1/procedures?sort=success_rate&order={order}")["items"]
        assert [p["id"] for p in items] == [ids[o] for o in expected], order
    assert _get(client, "/v1/procedures?builder=proceduralization&status=active")["total"] == 2
    assert _get(client, "/v1/procedures?builder=script")["total"] == 0
    # With a task type and a sort, the total is counted (the plain list leaves it null).
    typed = _get(client, "/v1/procedures?task_type=pick_clean_then_place_in_recep&sort=updated")
    assert typed["total"] == 3
    paged = _get(client, "/v1/procedures?sort=uses&limit=1&offset=1")
    assert len(paged["items"]) == 1 and paged["items"][0]["id"] == by_uses["items"][1]["id"]
    bad = client.get("/v1/procedures?sort=cleverness", headers=auth())
    assert bad.status_code == 422


def test_diff_between_versions_is_line_by_line(seeded):
    client, ids, _ = seeded
    d = _get(client, f"/v1/procedures/{ids['apple']}/diff?a=1&b=2")
    assert set(d["fields"]) == {"summary", "script", "steps", "notes"}
    changed = [line for lines in d["fields"].values() for line in lines if line["op"] != "same"]
    assert changed, "the adjustment revision changed nothing visible"
    assert any(line["op"] == "added" for line in d["fields"]["notes"])  # a pitfall learned from the failure
    r = client.get(f"/v1/procedures/{ids['apple']}/diff?a=1&b=9", headers=auth())
    assert r.status_code == 404 and "no version 9" in r.json()["error"]["message"]


def test_line_diff_keeps_order_and_tags():
    assert line_diff(["a", "b", "c"], ["a", "x", "c", "d"]) == [
        {"op": "same", "text": "a"}, {"op": "removed", "text": "b"}, {"op": "added", "text": "x"},
        {"op": "same", "text": "c"}, {"op": "added", "text": "d"}]


def test_trajectory_behind_a_procedure_can_be_read(seeded):
    client, ids, store = seeded
    source = store.get("team-a", ids["apple"], 1).provenance.trajectory_ids[0]
    t = _get(client, f"/v1/trajectories/{source}")
    assert t["id"] == source and t["task"]["text"].startswith("put a clean apple")
    assert client.get(f"/v1/trajectories/{source}", headers=auth(TOKEN_B)).status_code == 404


def test_deprecations_list_evidence_and_follow_restores(seeded):
    client, ids, _ = seeded
    page = _get(client, "/v1/deprecations")
    assert page["total"] == 1
    d = page["items"][0]
    assert d["procedure_id"] == ids["egg"] and d["reason"] == "failed every use in the seed"
    assert d["status_now"] == "deprecated" and d["evidence"] == {"uses": 0, "successes": 0}
    assert "egg" in d["key"]
    r = client.post(f"/v1/procedures/{ids['egg']}/restore", json={"reason": "test"}, headers=auth())
    assert r.status_code == 200
    assert _get(client, "/v1/deprecations")["items"][0]["status_now"] == "active"


def test_experiments_folder(sqlite_store, tmp_path):
    root = tmp_path / "exp"
    (root / "demo").mkdir(parents=True)
    (root / "demo" / "results.json").write_text(json.dumps({"build": {"none": {"n": 3, "success_rate": 0.5}}}))
    (root / "demo" / "report.md").write_text("# Demo\n\n![build](build.png)\n")
    (root / "demo" / "build.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (root / "demo" / "secret.txt").write_text("not served")
    (root / "not-an-experiment").mkdir()
    with make_client(sqlite_store, experiments=root) as client:
        assert _get(client, "/v1/experiments") == [
            {"name": "demo", "has_results": True, "has_report": True, "plots": ["build.png"]}]
        e = _get(client, "/v1/experiments/demo")
        assert e["results"]["build"]["none"]["n"] == 3 and e["report"].startswith("# Demo")
        png = client.get("/v1/experiments/demo/files/build.png", headers=auth())
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        for path in ("/v1/experiments/demo/files/secret.txt", "/v1/experiments/demo/files/..%2Fdemo%2Fbuild.png",
                     "/v1/experiments/nope", "/v1/experiments/not-an-experiment"):
            assert client.get(path, headers=auth()).status_code == 404, path
    with make_client(sqlite_store, experiments=root / "demo") as client:  # one experiment's own folder
        assert [e["name"] for e in _get(client, "/v1/experiments")] == ["demo"]
    with make_client(sqlite_store) as client:
        assert _get(client, "/v1/experiments") == []
        r = client.get("/v1/experiments/demo", headers=auth())
        assert r.status_code == 404 and "--experiments" in r.json()["error"]["message"]


@pytest.mark.slow
def test_paging_a_large_memory_stays_in_the_database(tmp_path):
    """20k heads written straight to SQLite: a sorted page is read without loading them all."""
    import time

    store = SQLiteStore(tmp_path / "big.db")
    n = 20_000
    procs = [Procedure(namespace="team-a", key=f"task number {i}", builder="script" if i % 2 else "trajectory",
                       task_type=f"type{i % 7}", stats={"uses": i % 97, "successes": (i % 97) // 2})
             for i in range(n)]
    # One import, one transaction: put() one by one would take minutes.
    store.import_records([{"type": "procedure", "procedure": p.model_dump(mode="json")} for p in procs])
    with make_client(store) as client:
        started = time.perf_counter()
        page = _get(client, "/v1/procedures?sort=uses&builder=script&limit=50&offset=5000")
        elapsed = time.perf_counter() - started
    assert page["total"] == n // 2 and len(page["items"]) == 50
    assert all(p["builder"] == "script" for p in page["items"])
    uses = [p["stats"]["uses"] for p in page["items"]]
    assert uses == sorted(uses, reverse=True)
    assert elapsed < 5, f"a page of 20k took {elapsed:.1f} s"
    store.close()
