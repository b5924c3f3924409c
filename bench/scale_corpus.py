"""Realistic, distinct task texts and their real MiniLM vectors, embedded once and cached on disk.

    python bench/scale_corpus.py --n 1000000 [--seed 0] [--embedder minilm] [--cache DIR]

The texts are what agents are asked to do (household chores, trips, bookings, orders, errands,
meetings, repairs …), drawn from templates over many objects, places, cities, dates, budgets and
people, without repeats. Embedding a million of them is the slow part of the scale benchmark, so
the vectors are computed in chunks of ``CHUNK`` texts and each chunk is saved as an ``.npy`` under
the cache folder (default ``~/.cache/memp-bench``, outside the repository), named by the embedder
and a hash of the chunk's texts: a run with the same seed finds them again, a changed generator
never picks up stale vectors, and an interrupted run resumes at the first missing chunk.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

CHUNK = 10_000
DEFAULT_CACHE = Path(os.environ.get("MEMP_BENCH_CACHE", Path.home() / ".cache" / "memp-bench"))

OBJECTS = ["apple", "mug", "tomato", "pencil", "cellphone", "book", "spoon", "vase", "towel", "potato",
           "candle", "egg", "lettuce", "plate", "knife", "watch", "keychain", "pillow", "cd", "bowl",
           "laptop", "remote control", "soap bar", "spray bottle", "credit card", "newspaper", "pan",
           "kettle", "cup", "fork", "ladle", "bread", "statue", "alarm clock", "desk lamp", "tissue box",
           "houseplant", "basketball", "tennis racket", "baseball bat", "dish sponge", "salt shaker",
           "pepper shaker", "wine bottle", "butter knife", "spatula", "teddy bear", "cloth", "glass bottle"]
PLACES = ["fridge", "cabinet", "shelf", "desk", "sofa", "countertop", "drawer", "bed", "garbage can",
          "side table", "toilet", "microwave", "sink basin", "dresser", "armchair", "coffee table",
          "dining table", "safe", "bathtub", "stove burner", "ottoman", "tv stand", "laundry hamper",
          "towel holder", "cart", "bookshelf", "nightstand", "coffee machine", "toaster", "sofa bed"]
ADJECTIVES = ["clean", "hot", "cool", "sliced", "wet", "warm", "chilled", "rinsed", "heated", "dry"]
CITIES = ["New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Philadelphia", "San Antonio",
          "San Diego", "Dallas", "Austin", "Seattle", "Denver", "Boston", "Nashville", "Portland",
          "Las Vegas", "Detroit", "Memphis", "Atlanta", "Miami", "Minneapolis", "Tampa", "Orlando",
          "New Orleans", "Cleveland", "Pittsburgh", "Cincinnati", "Kansas City", "St. Louis", "Sacramento",
          "Salt Lake City", "Raleigh", "Charlotte", "Richmond", "Baltimore", "Milwaukee", "Albuquerque",
          "Tucson", "Omaha", "Honolulu", "Anchorage", "Buffalo", "Savannah", "Charleston", "Santa Fe",
          "Boise", "Spokane", "Madison", "Louisville", "Indianapolis", "Columbus", "San Francisco",
          "San Jose", "Oakland", "Fresno", "Reno", "Tulsa", "Little Rock", "Birmingham", "Jacksonville"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
CUISINES = ["Italian", "Mexican", "Chinese", "Indian", "Thai", "French", "Japanese", "Greek",
            "Mediterranean", "American", "Korean", "Vietnamese", "Spanish", "Ethiopian", "seafood", "vegan"]
PEOPLE = ["Alice", "Bob", "Carmen", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kofi",
          "Lena", "Marco", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Victor",
          "Wen", "Ximena", "Yusuf", "Zoe", "the landlord", "the dentist", "my manager", "the plumber"]
TOPICS = ["the quarterly budget", "the product launch", "hiring plans", "the office move", "the audit",
          "the marketing plan", "customer churn", "the Q3 roadmap", "vendor contracts", "the offsite",
          "security review", "the annual report", "onboarding", "the sales forecast", "the data migration"]
PRODUCTS = ["running shoes", "a standing desk", "printer ink", "a rain jacket", "noise-cancelling headphones",
            "a coffee grinder", "dog food", "a phone charger", "bed sheets", "a winter coat", "a blender",
            "vitamins", "a yoga mat", "light bulbs", "a backpack", "an office chair", "batteries",
            "a bike helmet", "a desk fan", "paper towels"]
STORES = ["Amazon", "Target", "Walmart", "Best Buy", "Costco", "Home Depot", "IKEA", "Whole Foods",
          "the corner pharmacy", "REI", "Trader Joe's", "eBay"]
REPAIRS = ["leaking faucet", "broken dishwasher", "flat bike tire", "cracked phone screen", "clogged drain",
           "squeaky door", "faulty thermostat", "dead car battery", "slow laptop", "wobbly table leg"]
TRANSPORT = ["flight", "train", "bus", "rental car", "ferry"]
ROOMS = ["kitchen", "living room", "bedroom", "bathroom", "garage", "office", "hallway", "basement"]


def _date(rng: random.Random) -> str:
    return f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(2022, 2027)}"


def _money(rng: random.Random, lo: int, hi: int, step: int) -> str:
    return f"${rng.randrange(lo, hi, step):,}"


def _text(rng: random.Random) -> str:  # noqa: PLR0911 - one return per kind of task
    kind = rng.randrange(10)
    if kind == 0:
        return (f"put a {rng.choice(ADJECTIVES)} {rng.choice(OBJECTS)} in the {rng.choice(PLACES)} "
                f"in the {rng.choice(ROOMS)} of apartment {rng.randint(1, 400)}")
    if kind == 1:
        return (f"find two {rng.choice(OBJECTS)}s and put them on the {rng.choice(PLACES)}, "
                f"then look at the {rng.choice(OBJECTS)} under the {rng.choice(PLACES)} lamp "
                f"(house {rng.randint(1, 900)})")
    if kind == 2:
        a, b = rng.sample(CITIES, 2)
        return (f"Plan a {rng.randint(2, 9)}-day trip from {a} to {b} starting {_date(rng)} for "
                f"{rng.randint(1, 8)} people with a budget of {_money(rng, 800, 20000, 50)}")
    if kind == 3:
        return (f"Book a table for {rng.randint(2, 12)} at a {rng.choice(CUISINES)} restaurant in "
                f"{rng.choice(CITIES)} on {_date(rng)} at {rng.randint(5, 10)}:{rng.choice(['00', '15', '30', '45'])} pm")
    if kind == 4:
        a, b = rng.sample(CITIES, 2)
        return (f"Find the cheapest {rng.choice(TRANSPORT)} from {a} to {b} on {_date(rng)} "
                f"under {_money(rng, 50, 2000, 10)}, returning {_date(rng)}")
    if kind == 5:
        return (f"Order {rng.choice(PRODUCTS)} (quantity {rng.randint(1, 6)}) from {rng.choice(STORES)} under "
                f"{_money(rng, 10, 900, 5)} delivered to {rng.choice(CITIES)} by {_date(rng)}")
    if kind == 6:
        return (f"Schedule a {rng.choice([15, 30, 45, 60, 90])}-minute meeting with {rng.choice(PEOPLE)} "
                f"about {rng.choice(TOPICS)} on {_date(rng)} at {rng.randint(8, 17)}:00")
    if kind == 7:
        return (f"Get the {rng.choice(REPAIRS)} in the {rng.choice(ROOMS)} fixed before {_date(rng)} "
                f"for at most {_money(rng, 40, 1500, 10)} in {rng.choice(CITIES)}")
    if kind == 8:
        return (f"Find a hotel in {rng.choice(CITIES)} for {rng.randint(1, 14)} nights from {_date(rng)} "
                f"with {rng.choice(['free breakfast', 'a pool', 'parking', 'a gym', 'pets allowed', 'a kitchen'])} "
                f"under {_money(rng, 60, 600, 5)} a night")
    return (f"Remind {rng.choice(PEOPLE)} to {rng.choice(['pay', 'renew', 'cancel', 'review', 'sign'])} "
            f"the {rng.choice(['rent', 'insurance', 'gym membership', 'lease', 'invoice', 'passport', 'contract'])} "
            f"#{rng.randint(100, 99999)} by {_date(rng)}")


def task_texts(n: int, seed: int) -> list[str]:
    """``n`` distinct task texts; the same seed gives the same list, and a longer list starts with a
    shorter one's texts."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        text = _text(rng)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _chunk_path(cache: Path, embedder: str, texts: list[str]) -> Path:
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    return cache / f"{embedder}-{len(texts)}-{digest}.npy"


class _Lazy:
    """The embedder, made the first time a chunk is missing from the cache."""

    def __init__(self, name: str) -> None:
        self.name, self._emb = name, None

    def embed(self, texts: list[str]) -> tuple[np.ndarray, str]:
        if self._emb is None:
            from memp.embed import make_embedder

            self._emb = make_embedder(self.name, cache=False)  # the chunk files are the cache
        inner = getattr(self._emb, "inner", self._emb)
        how = (type(inner).__doc__ or type(inner).__name__).split(":")[0].strip()  # e.g. "… on ONNX Runtime"
        return np.asarray(self._emb.embed(texts), np.float32), how


def vectors(texts: list[str], embedder: str = "minilm", cache: Path = DEFAULT_CACHE,
            log=print) -> tuple[np.ndarray, dict]:
    """The texts' vectors (float32, rows of unit length), from the cache where it has them."""
    cache.mkdir(parents=True, exist_ok=True)
    model = _Lazy(embedder)
    out = np.empty((len(texts), 384), np.float32)
    info: dict = {"embedders": set(), "embed_s": 0.0, "cached_chunks": 0, "embedded_chunks": 0}
    for lo in range(0, len(texts), CHUNK):
        part = texts[lo:lo + CHUNK]
        path = _chunk_path(cache, embedder, part)
        if path.exists():
            info["cached_chunks"] += 1
            info["embedders"].add(json.loads(path.with_suffix(".json").read_text())["embedder"])
            vecs = np.load(path)
        else:
            t0 = time.perf_counter()
            vecs, label = model.embed(part)
            took = time.perf_counter() - t0
            info["embed_s"] += took
            info["embedded_chunks"] += 1
            info["embedders"].add(label)
            path.with_suffix(".json").write_text(json.dumps(
                {"embedder": label, "texts": len(part), "seconds": round(took, 1), "first": part[0]}) + "\n")
            tmp = path.with_name(path.stem + ".partial.npy")
            np.save(tmp, vecs)
            os.replace(tmp, path)  # a chunk is there whole or not at all
        if out.shape[1] != vecs.shape[1]:
            out = np.empty((len(texts), vecs.shape[1]), np.float32)
        out[lo:lo + len(part)] = vecs
        log(f"vectors {lo + len(part)}/{len(texts)} ({info['embed_s']:.0f} s embedding)")
    info["embedders"] = sorted(info["embedders"])
    info["embed_s"] = round(info["embed_s"], 1)
    return out, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    t0 = time.perf_counter()
    texts = task_texts(args.n, args.seed)
    print(f"{len(texts)} texts in {time.perf_counter() - t0:.1f} s", flush=True)
    vecs, info = vectors(texts, args.embedder, args.cache, log=lambda m: print(m, flush=True))
    print(json.dumps({"n": len(vecs), **info}))


if __name__ == "__main__":
    main()
