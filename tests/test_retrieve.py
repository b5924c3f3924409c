import itertools

import pytest

from memp import InvalidInputError, UnknownStrategyError
from memp.embed import embed_procedure
from memp.retrieve import AveFactRetriever, make_retriever
from memp.store import SQLiteStore
from memp.types import Procedure, Task

OBJECTS = ["mug", "tomato", "pencil", "cellphone", "book", "spoon", "vase", "towel", "potato", "candle"]
PLACES = ["cabinet", "shelf", "desk", "sofa", "countertop", "drawer", "bed", "garbagecan", "sidetable", "toilet"]
TEMPLATES = {
    "clean": "put a clean {o} in {p}.",
    "heat": "put a hot {o} in {p}.",
    "cool": "put a cool {o} in {p}.",
    "look": "look at {o} under the desklamp.",
    "two": "find two {o} and put them in {p}.",
    "place": "put some {o} on {p}.",
}
OTHER_DOMAINS = [
    "Plan a 3-day trip from Seattle to Denver for 2 people with a budget of $1,900.",
    "Book a table for four at an Italian restaurant tonight.",
    "Refactor the payment module to use dependency injection.",
    "Summarise the quarterly earnings report in five bullet points.",
    "Write a SQL query returning the ten most active users.",
    "Water the tomato plants in the garden every morning.",
    "Translate the user manual into French.",
    "Fix the flaky integration test in the CI pipeline.",
    "Schedule a dentist appointment for next Tuesday.",
    "Compose an email declining the meeting invitation.",
]


def _store_with(tmp_path, embedder, keys: list[tuple[str, str | None]]) -> tuple[SQLiteStore, list[Procedure]]:
    from memp.keywords import RuleKeywordExtractor

    store = SQLiteStore(tmp_path / "memp.db")
    procs = []
    for key, task_type in keys:
        kw = RuleKeywordExtractor().extract(Task(text=key))
        p = embed_procedure(Procedure(key=key, task_type=task_type, keywords=kw), embedder)
        store.put(p)
        procs.append(p)
    return store, procs


def _distractors() -> list[str]:
    household = [TEMPLATES[t].format(o=o, p=p) for t, o, p in
                 itertools.islice(itertools.product(TEMPLATES, OBJECTS, PLACES), 0, 600, 6)]
    return (household[:90] + OTHER_DOMAINS)[:100]


def test_query_ranks_paraphrase_first_among_100_distractors(tmp_path, minilm):
    target = "put a clean apple in fridge."
    distractors = _distractors()
    assert len(distractors) == 100 and not any("apple" in d or "fridge" in d for d in distractors)
    store, procs = _store_with(tmp_path, minilm, [(target, "clean")] + [(d, None) for d in distractors])
    retriever = make_retriever("query", embedder=minilm)
    for paraphrase in ("rinse an apple and then place it inside the refrigerator",
                       "wash the apple, then store it in the fridge"):
        hits = retriever.retrieve(Task(text=paraphrase), store, "default", 3)
        assert hits[0].procedure.id == procs[0].id, [h.procedure.key for h in hits]
        assert hits[0].score > hits[1].score
    store.close()


def _labelled(split: str) -> list[tuple[str, str]]:
    objects = OBJECTS[:5] if split == "memory" else OBJECTS[5:]
    places = PLACES[:5] if split == "memory" else PLACES[5:]
    return [(TEMPLATES[t].format(o=o, p=p), t) for t in TEMPLATES for o, p in zip(objects, places)]


def test_avefact_beats_random_on_labelled_tasks(tmp_path, minilm):
    store, _ = _store_with(tmp_path, minilm, _labelled("memory"))
    queries = _labelled("query")

    def precision(retriever) -> float:
        right = 0
        for text, label in queries:
            hits = retriever.retrieve(Task(text=text), store, "default", 1)
            right += hits[0].procedure.task_type == label
        return right / len(queries)

    avefact = precision(make_retriever("avefact", embedder=minilm))
    random_ = precision(make_retriever("random", embedder=minilm, seed=1))
    assert avefact >= 0.6, avefact
    assert avefact >= random_ + 0.3, (avefact, random_)
    store.close()


def test_avefact_skips_procedures_sharing_no_keyword(tmp_path, hashing):
    store, procs = _store_with(tmp_path, hashing, [("put a clean mug in cabinet.", "clean")])
    odd = embed_procedure(Procedure(key="trip", keywords={"days": "3"}), hashing)
    store.put(odd)
    hits = AveFactRetriever(hashing).retrieve(Task(text="put a clean cup in shelf."), store, "default", 5)
    assert [h.procedure.id for h in hits] == [procs[0].id]
    assert AveFactRetriever(hashing).retrieve(Task(text="x", keywords={"budget": "9"}), store, "default", 5) == []
    store.close()


def test_hybrid_fuses_lexical_and_vector(tmp_path, minilm):
    keys = [(d, None) for d in OTHER_DOMAINS]
    store, procs = _store_with(tmp_path, minilm, keys)
    hits = make_retriever("hybrid", embedder=minilm).retrieve(
        Task(text="the flaky CI integration test must be fixed"), store, "default", 3)
    assert hits[0].procedure.id == procs[7].id
    assert len(hits) == 3 and hits[0].score > hits[-1].score
    store.close()


def test_random_is_seeded_and_min_score_filters(tmp_path, hashing):
    store, _ = _store_with(tmp_path, hashing, [(d, None) for d in OTHER_DOMAINS])
    pick = lambda seed: [h.procedure.id for h in make_retriever("random", embedder=hashing, seed=seed)
                         .retrieve(Task(text="x"), store, "default", 4)]
    assert pick(3) == pick(3) and len(set(pick(3))) == 4
    strict = make_retriever("query", embedder=hashing, min_score=0.99)
    assert strict.retrieve(Task(text="completely unrelated words"), store, "default", 5) == []
    loose = make_retriever("query", embedder=hashing)
    assert len(loose.retrieve(Task(text="completely unrelated words"), store, "default", 5)) == 5
    assert loose.retrieve(Task(text="x"), store, "default", 0) == []
    with pytest.raises(InvalidInputError, match="k must be"):
        loose.retrieve(Task(text="x"), store, "default", -1)
    with pytest.raises(UnknownStrategyError, match="random, query, avefact, hybrid"):
        make_retriever("bm25", embedder=hashing)
    store.close()


def test_same_seed_same_picks_across_stores_despite_random_ids(tmp_path, hashing):
    """Ids are random uuids; ties and random samples must follow storage order instead."""
    keys = [("same task", None)] * 4 + [(d, None) for d in OTHER_DOMAINS]

    def picks(folder: str) -> tuple[list[str], list[str]]:
        (tmp_path / folder).mkdir()
        store, procs = _store_with(tmp_path / folder, hashing, keys)
        position = {p.id: i for i, p in enumerate(procs)}
        rand = make_retriever("random", embedder=hashing, seed=7).retrieve(Task(text="x"), store, "default", 5)
        ties = make_retriever("query", embedder=hashing).retrieve(Task(text="same task"), store, "default", 4)
        store.close()
        return [position[h.procedure.id] for h in rand], [position[h.procedure.id] for h in ties]

    first, second = picks("a"), picks("b")
    assert first == second
    assert first[1] == [0, 1, 2, 3]  # equal scores come back in the order they were stored


def test_credit_ranking_lifts_what_worked_over_what_failed(tmp_path, hashing):
    """Two procedures for the same task: by similarity alone the one stored first comes first;
    once it has failed three times and the other has worked twice, credit turns them round."""
    from memp.retrieve import CreditRanked, credit
    from memp.types import ProcedureStats

    store, procs = _store_with(tmp_path, hashing, [("put a hot apple in fridge.", None)] * 2
                               + [(d, None) for d in OTHER_DOMAINS])
    first, second = procs[0].id, procs[1].id
    task = Task(text="put a hot apple in fridge.")
    ranked = make_retriever("query", embedder=hashing, credit_weight=0.2)
    assert isinstance(ranked, CreditRanked) and ranked.name == "query+credit"
    assert [h.procedure.id for h in ranked.retrieve(task, store, "default", 2)] == [first, second]
    for ok in (False, False, False):
        store.record_use("default", first, 1, success=ok)
    for ok in (True, True):
        store.record_use("default", second, 1, success=ok)
    hits = ranked.retrieve(task, store, "default", 2)
    assert [h.procedure.id for h in hits] == [second, first]
    assert hits[0].score - hits[1].score == pytest.approx(0.2 * (credit(ProcedureStats(uses=2, successes=2))
                                                                 - credit(ProcedureStats(uses=3, successes=0))),
                                                          abs=1e-5)
    # Without credit the order stays by similarity (and storage order among equals).
    plain = make_retriever("query", embedder=hashing).retrieve(task, store, "default", 2)
    assert [h.procedure.id for h in plain] == [first, second]
    assert credit(ProcedureStats()) == 0.5
    with pytest.raises(InvalidInputError, match="credit weight"):
        make_retriever("query", embedder=hashing, credit_weight=-1.0)
    store.close()


@pytest.mark.parametrize("name", ["random", "query", "avefact", "hybrid"])
def test_hits_are_the_stored_heads_without_their_vectors(tmp_path, hashing, name):
    """A hit carries the stored procedure, statistics included, but not its vectors (an agent
    reads its text; ``store.get`` reads the vectors)."""
    store, procs = _store_with(tmp_path, hashing, [(TEMPLATES[t].format(o="mug", p="desk"), t) for t in TEMPLATES])
    store.record_use("default", procs[0].id, 1, success=True)
    hits = make_retriever(name, embedder=hashing).retrieve(Task(text="put a clean mug in desk."), store, "default", 3)
    assert len(hits) == 3
    for hit in hits:
        stored = store.get("default", hit.procedure.id)
        assert hit.procedure == stored.model_copy(update={"embedding": None, "keyword_embeddings": {}})
    store.close()
