"""Hostile input against every REST write endpoint and `memp memory add` / `import`.

Property-based: hypothesis builds lone surrogates, deep nesting, huge and non-finite numbers,
vectors of the wrong shape, broken refs, invalid UTF-8 and over-limit bodies sent plain or
chunked. Every answer must be below 500; every refusal must be a structured 4xx that leaves the
store exactly as it was (its generation is unchanged), and the namespace must keep working.
Each test counts the inputs it sent; QUOTA says how many, at least 5,000 in all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memp.embed import HashingEmbedder
from memp.memory import Memory
from memp.store import SQLiteStore
from tests.conftest import clean_apple_trajectory
from tests.server.conftest import auth, make_client

QUOTA = {"trajectories": 1500, "outcomes": 1000, "import": 1000, "status": 300, "retrieve": 300,
         "raw": 500, "cli_add": 250, "cli_import": 250}
LIMIT = 64 * 1024  # the service's body limit in these tests: over-limit bodies stay cheap
DIM = HashingEmbedder().dim


def _settings(name: str):
    return settings(max_examples=QUOTA[name], deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


def test_the_quotas_add_up_to_5000_hostile_inputs():
    assert sum(QUOTA.values()) >= 5000


# -- hostile values -------------------------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
text = st.one_of(
    st.text(max_size=12),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=6), SURROGATES, st.text(max_size=6)),
)


def nested(depth: int, leaf=1):
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=10**40),
    st.integers(max_value=-(2**63) + 1, min_value=-(10**40)),
    st.floats(allow_nan=True, allow_infinity=True),
)
deep = st.integers(min_value=30, max_value=700).map(nested)
leaf = st.one_of(st.none(), st.booleans(), numbers, text)
value = st.one_of(
    leaf, deep,
    st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                 max_leaves=6),
)


def _dumps(data) -> bytes:
    # ensure_ascii: a lone surrogate goes on the wire as the escape "\ud800", as a client's would.
    return json.dumps(data, allow_nan=True).encode()


# Raw tokens no JSON encoder writes but a hostile client can: spliced in place of a value.
RAW = st.sampled_from([b"1" * 10_000, b"-" + b"9" * 5000, b"[" * 5000, b'{"a":' * 3000, b"1e999",
                       b"NaN", b"-Infinity", b"10" + b"0" * 30, b'"\\ud800"', b'"\xff\xfe"'])


def _splice(body: bytes, raw: bytes) -> bytes:
    # The value "__RAW__" stands where the raw token goes.
    return body.replace(b'"__RAW__"', raw, 1)


def trajectory_dict(**overrides):
    data = json.loads(clean_apple_trajectory().model_dump_json())
    data.pop("id")
    data.update(overrides)
    return data


FIELDS = ["task", "steps", "reward", "id", "metadata", "agent", "model", "error", "success"]


@st.composite
def hostile_trajectory(draw):
    """A real trajectory with one to three fields (or parts of them) made hostile."""
    data = trajectory_dict(id=draw(st.text(min_size=1, max_size=10)))
    fields = draw(st.lists(st.sampled_from(FIELDS + ["task.text", "step.action", "metadata.x"]),
                           min_size=1, max_size=3, unique=True))
    # Parts of a field first, whole fields after: a replaced field has no parts left to reach.
    for field in sorted(fields, key=lambda f: "." not in f):
        bad = draw(st.one_of(value, st.just("__RAW__")))
        if field == "task.text":
            data["task"]["text"] = bad
        elif field == "step.action":
            data["steps"][0]["action"] = bad
        elif field == "metadata.x":
            data["metadata"]["x"] = bad
        else:
            data[field] = bad
    return data


# -- the service ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A service with one procedure (and its trajectory) in team-a; the id of that procedure."""
    path = tmp_path_factory.mktemp("hostile") / "h.db"
    store = SQLiteStore(path)
    with make_client(store, max_body_bytes=LIMIT) as client:
        r = client.post("/v1/trajectories", json=json.loads(clean_apple_trajectory(traj_id="seed").model_dump_json()),
                        headers=auth())
        assert r.status_code == 201, r.text
        pid = r.json()["added"][0].split("@v")[0]
        yield client, store, pid
    store.close()


class Sent:
    """Counts inputs and checks each answer: below 500, and a refusal changes nothing."""

    def __init__(self, client, store) -> None:
        self.client, self.store, self.count, self.refused = client, store, 0, 0

    def post(self, url: str, body, content_type: str = "application/json", headers: dict | None = None):
        before = self.store.generation()
        r = self.client.post(url, content=body, headers={**auth(), "content-type": content_type,
                                                         **(headers or {})})
        self.count += 1
        assert r.status_code < 500, (url, body[:300] if isinstance(body, bytes) else body, r.text)
        if r.status_code >= 400:
            self.refused += 1
            error = r.json()["error"]
            assert error["type"] and len(error["message"]) > 10, r.text
            assert self.store.generation() == before, (url, r.text)
        return r

    def namespace_still_works(self) -> None:
        r = self.client.post("/v1/retrieve", json={"task": "put a clean apple in fridge", "k": 3},
                             headers=auth())
        assert r.status_code == 200 and r.json()["hits"], r.text
        run = trajectory_dict(id=f"after-{self.count}")
        assert self.client.post("/v1/trajectories", json=run, headers=auth()).status_code == 201


def _body(data, raw: bytes) -> bytes:
    return _splice(_dumps(data), raw)


def test_trajectories(service):
    client, store, _ = service
    sent = Sent(client, store)

    @_settings("trajectories")
    @given(data=hostile_trajectory(), raw=RAW, mode=st.sampled_from(["update", "add"]))
    def check(data, raw, mode):
        sent.post(f"/v1/trajectories?mode={mode}", _body(data, raw))

    check()
    assert sent.count >= QUOTA["trajectories"] and sent.refused > sent.count // 2
    sent.namespace_still_works()


@st.composite
def hostile_ref(draw, pid: str):
    return draw(st.one_of(
        st.just(pid), st.just(f"{pid}@v1"),
        st.integers(min_value=1, max_value=60).map(lambda n: f"{pid}@v" + "9" * n),
        st.sampled_from([f"{pid}@v²", f"{pid}@v١", f"{pid}@v-1", f"{pid}@v", f"{pid}@v1.5", "@v1", "",
                         f"{pid}\ud800@v1", f"{pid}@v\ud800"]),
        text,
    ))


def test_outcomes(service):
    client, store, pid = service
    sent = Sent(client, store)

    @_settings("outcomes")
    @given(data=st.data(), raw=RAW)
    def check(data, raw):
        run = data.draw(st.one_of(hostile_trajectory(), st.builds(lambda i: trajectory_dict(id=i), text)))
        used = data.draw(st.one_of(st.lists(hostile_ref(pid), max_size=3), value))
        sent.post("/v1/outcomes", _body({"trajectory": run, "used": used}, raw))

    check()
    assert sent.count >= QUOTA["outcomes"]
    sent.namespace_still_works()


def _export_lines(store, pid: str) -> list[dict]:
    return [r for r in store.export_records("team-a") if r.get("type") != "procedure"
            or r["procedure"]["id"] == pid]


WRONG_VECTORS = st.one_of(
    st.integers(min_value=0, max_value=DIM * 2).filter(lambda n: n != DIM).map(lambda n: [0.1] * n),
    st.just([[0.1] * DIM]), st.just(["x"] * DIM), st.just([True] * DIM), st.just([None] * DIM),
    st.just({"0": 0.1}), st.just("0.1,0.2"), st.just(1.0),
)


def test_import(service):
    client, store, pid = service
    sent = Sent(client, store)
    export = _export_lines(store, pid)

    @_settings("import")
    @given(data=st.data(), raw=RAW)
    def check(data, raw):
        records = json.loads(json.dumps(export))
        target = data.draw(st.sampled_from(["embedding", "keyword_embeddings", "version", "extra",
                                            "key", "record", "line"]))
        procedure = next(r["procedure"] for r in records if r.get("type") == "procedure")
        # A fresh id each time: the import is otherwise valid, so only the hostile part refuses it.
        procedure["id"] = data.draw(st.uuids()).hex
        for r in records:
            if r.get("type") == "event":
                r["event"]["procedure_id"] = procedure["id"]
        if target == "embedding":
            procedure["embedding"] = data.draw(WRONG_VECTORS)
        elif target == "keyword_embeddings":
            procedure["keyword_embeddings"] = {"object": data.draw(WRONG_VECTORS)}
        elif target == "version":
            procedure["version"] = data.draw(st.one_of(numbers, st.just("__RAW__")))
        elif target == "extra":
            procedure["extra"] = {"x": data.draw(st.one_of(value, st.just("__RAW__")))}
        elif target == "key":
            procedure["key"] = data.draw(text)
        elif target == "record":
            records.append(data.draw(value))
        lines = [_dumps(r) for r in records]
        if target == "line":
            lines.insert(data.draw(st.integers(0, len(lines))), b'"__RAW__"')
        sent.post("/v1/import", _splice(b"\n".join(lines), raw), "application/x-ndjson")

    check()
    assert sent.count >= QUOTA["import"]
    sent.namespace_still_works()


def test_status_changes(service):
    client, store, pid = service
    sent = Sent(client, store)

    @_settings("status")
    @given(action=st.sampled_from(["deprecate", "restore"]), target=st.one_of(st.just(pid), text),
           reason=st.one_of(value, st.just("__RAW__")), raw=RAW)
    def check(action, target, reason, raw):
        from urllib.parse import quote

        url = f"/v1/procedures/{quote(target.encode('utf-8', 'surrogatepass'), safe='')}/{action}"
        r = sent.post(url, _body({"reason": reason}, raw))
        if r.status_code == 200:  # undo, so the next example finds the procedure as it was
            other = "restore" if action == "deprecate" else "deprecate"
            assert client.post(f"/v1/procedures/{pid}/{other}", json={"reason": "undo"},
                               headers=auth()).status_code == 200

    check()
    assert sent.count >= QUOTA["status"]
    sent.namespace_still_works()


def test_retrieve(service):
    client, store, _ = service
    sent = Sent(client, store)

    @_settings("retrieve")
    @given(task=st.one_of(value, st.fixed_dictionaries({"text": value}, optional={"keywords": value})),
           k=st.one_of(st.none(), numbers), strategy=st.one_of(st.none(), text), raw=RAW)
    def check(task, k, strategy, raw):
        body = {"task": task} | ({} if k is None else {"k": k}) | ({} if strategy is None else {"strategy": strategy})
        sent.post("/v1/retrieve", _body(body, raw))

    check()
    assert sent.count >= QUOTA["retrieve"]


def test_raw_bodies_plain_chunked_and_over_the_limit(service):
    client, store, _ = service
    sent = Sent(client, store)
    urls = ["/v1/trajectories", "/v1/outcomes", "/v1/import", "/v1/retrieve", "/v1/procedures/x/deprecate"]

    @_settings("raw")
    @given(url=st.sampled_from(urls), size=st.integers(min_value=0, max_value=LIMIT * 3),
           fill=st.sampled_from([b"a", b"[", b"\xff", b'{"task":"', b"\xed\xa0\x80", b"1"]),
           chunked=st.booleans(), content_type=st.sampled_from(["application/json", "application/x-ndjson", ""]))
    def check(url, size, fill, chunked, content_type):
        body = (fill * (size // len(fill) + 1))[:size]
        if chunked:  # no Content-Length: the limit must hold while the body streams in
            pieces = [body[i:i + 8192] for i in range(0, len(body), 8192)]
            r = sent.post(url, iter(pieces), content_type)
        else:
            r = sent.post(url, body, content_type)
        if size > LIMIT:
            assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large", r.text

    check()
    assert sent.count >= QUOTA["raw"]
    sent.namespace_still_works()


# -- the CLI ----------------------------------------------------------------------------------------


def _cli(*args: str, capsys) -> tuple[int, str]:
    """`memp ...` in this process, through the entry point's error handling: (exit code, stderr)."""
    from memp.cli._common import run
    from memp.cli.main import app

    old = sys.argv
    sys.argv = ["memp", *args]
    try:
        run(app)
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory):
    """A memory with two procedures, and an export of it."""
    folder = tmp_path_factory.mktemp("cli")
    db = folder / "memp.db"
    with Memory(SQLiteStore(db), embedder=HashingEmbedder(), update="vanilla") as mem:
        mem.update(clean_apple_trajectory(traj_id="a"))
        mem.update(clean_apple_trajectory("mug", "cabinet", traj_id="b"))
        export = [json.dumps(r) for r in mem.store.export_records("default")]
    return folder, db, export


def _lines_with_one_hostile(draw, good: list[str]) -> bytes:
    lines = [line.encode() for line in good]
    bad = draw(st.one_of(st.builds(_dumps, st.one_of(hostile_trajectory(), value)), RAW))
    if b"__RAW__" in bad:
        bad = _splice(bad, draw(RAW))
    lines.insert(draw(st.integers(0, len(lines))), bad)
    return b"\n".join(lines) + b"\n"


def _refused_cleanly(code: int, err: str, db: Path, before: bytes) -> None:
    assert code == 1, err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert db.read_bytes() == before  # all or nothing: the lines before the bad one were not written


def test_cli_memory_add(cli_db, tmp_path_factory, capsys):
    folder, db, _ = cli_db
    good = [trajectory_dict(id=f"new-{i}") for i in range(3)]
    src = folder / "runs.jsonl"
    count = 0

    @_settings("cli_add")
    @given(data=st.data())
    def check(data):
        nonlocal count
        lines = [json.dumps(dict(g, id=f"{g['id']}-{count}")) for g in good]
        src.write_bytes(_lines_with_one_hostile(data.draw, lines))
        before = db.read_bytes()
        code, err = _cli("memory", "add", str(src), "--db", str(db), "--embedder", "hashing", capsys=capsys)
        count += 1
        if code == 0:  # the "hostile" line happened to be a valid trajectory
            return
        _refused_cleanly(code, err, db, before)

    check()
    assert count >= QUOTA["cli_add"]


def test_cli_memory_import(cli_db, tmp_path_factory, capsys):
    folder, _, export = cli_db
    src = folder / "export.jsonl"
    target = folder / "target.db"
    count = 0

    @_settings("cli_import")
    @given(data=st.data())
    def check(data):
        nonlocal count
        src.write_bytes(_lines_with_one_hostile(data.draw, export))
        target.unlink(missing_ok=True)
        code, err = _cli("memory", "import", str(src), "--db", str(target), capsys=capsys)
        count += 1
        assert code == 1, err  # a hostile line is never a valid export record
        assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not target.exists()  # nothing created for a refused file

    check()
    assert count >= QUOTA["cli_import"]
