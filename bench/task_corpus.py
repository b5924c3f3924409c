"""Distinct ALFWorld-like and TravelPlanner-like task texts, and their cached MiniLM vectors.

    from task_corpus import task_texts, corpus_vectors

The texts come from templates over many objects, receptacles, rooms, cities, dates, budgets and
preferences, never repeating within one list, so a query is never a copy of a stored key. Embedding
100,000 of them takes minutes, so ``corpus_vectors`` keeps the matrix as an ``.npy`` in
MEMP_BENCH_CACHE (default ~/.cache/memp-bench, outside the repository), named by the embedder and
a digest of the texts: a changed generator never reads stale vectors.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import random
import time
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("MEMP_BENCH_CACHE", Path.home() / ".cache" / "memp-bench"))

OBJECTS = ["apple", "mug", "tomato", "pencil", "cellphone", "book", "spoon", "vase", "towel", "potato",
           "candle", "egg", "lettuce", "plate", "knife", "watch", "keychain", "pillow", "cd", "bowl",
           "laptop", "remote control", "soap bar", "spray bottle", "credit card", "newspaper", "pan",
           "kettle", "cup", "fork", "ladle", "bread", "statue", "alarm clock", "desk lamp", "tissue box",
           "houseplant", "basketball", "tennis racket", "baseball bat", "dish sponge", "salt shaker",
           "pepper shaker", "wine bottle", "butter knife", "spatula", "teddy bear", "cloth", "glass bottle",
           "pot", "soap bottle", "toilet paper", "hand towel", "box", "creditcard", "peppershaker"]
PLACES = ["fridge", "cabinet", "shelf", "desk", "sofa", "countertop", "drawer", "bed", "garbage can",
          "side table", "toilet", "microwave", "sink basin", "dresser", "armchair", "coffee table",
          "dining table", "safe", "bathtub", "stove burner", "ottoman", "tv stand", "laundry hamper",
          "towel holder", "cart", "bookshelf", "nightstand", "coffee machine", "toaster", "sofa bed"]
ROOMS = ["kitchen", "living room", "bedroom", "bathroom", "office", "hallway", "study", "guest room"]
CITIES = ["New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Philadelphia", "San Antonio",
          "San Diego", "Dallas", "Austin", "Seattle", "Denver", "Boston", "Nashville", "Portland",
          "Las Vegas", "Detroit", "Memphis", "Atlanta", "Miami", "Minneapolis", "Tampa", "Orlando",
          "New Orleans", "Cleveland", "Pittsburgh", "Cincinnati", "Kansas City", "St. Louis", "Sacramento",
          "Salt Lake City", "Raleigh", "Charlotte", "Richmond", "Baltimore", "Milwaukee", "Albuquerque",
          "Tucson", "Omaha", "Honolulu", "Anchorage", "Buffalo", "Savannah", "Charleston", "Santa Fe",
          "Boise", "Spokane", "Madison", "Louisville", "Indianapolis", "Columbus", "San Francisco"]
STATES = ["California", "Texas", "Florida", "New York", "Colorado", "Washington", "Georgia", "Ohio",
          "North Carolina", "Michigan", "Arizona", "Oregon", "Tennessee", "Illinois", "Pennsylvania"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
CUISINES = ["Italian", "Mexican", "Chinese", "Indian", "Thai", "French", "Japanese", "Greek",
            "Mediterranean", "American", "Korean", "Vietnamese", "Spanish", "seafood", "vegan"]
ROOM_TYPES = ["an entire room", "a private room", "a shared room", "not a shared room"]
HOUSE_RULES = ["parties", "smoking", "children under 10", "pets", "visitors"]
TRANSPORT = ["no flights", "no self-driving", "taxi only", "flights only"]
ALFWORLD = [
    "put a {obj} in {place}", "put some {obj} on {place}", "put a clean {obj} in {place}",
    "put a hot {obj} in {place}", "put a cool {obj} in {place}", "heat some {obj} and put it in {place}",
    "clean some {obj} and put it in {place}", "cool some {obj} and put it in {place}",
    "find two {obj} and put them in {place}", "examine the {obj} with the desklamp",
    "look at {obj} under the desklamp", "put two {obj} in {place}",
]


def _dates(rng: random.Random, days: int) -> tuple[str, str]:
    start = datetime.date(rng.randint(2022, 2026), rng.randint(1, 12), rng.randint(1, 28))
    end = start + datetime.timedelta(days=days - 1)
    return tuple(f"{MONTHS[d.month - 1]} {d.day}, {d.year}" for d in (start, end))


def _alfworld(rng: random.Random) -> str:
    task = rng.choice(ALFWORLD).format(obj=rng.choice(OBJECTS), place=rng.choice(PLACES))
    return f"{task} {rng.randint(1, 9)} in the {rng.choice(ROOMS)} of house {rng.randint(1, 5000)}."


def _travel(rng: random.Random) -> str:
    a, b = rng.sample(CITIES, 2)
    days = rng.choice([3, 5, 7])
    where = (f"to {b}" if days == 3 else f"visiting {rng.choice([2, 3])} cities in {rng.choice(STATES)}")
    people = rng.randint(1, 8)
    start, end = _dates(rng, days)
    text = (f"Please plan a {days}-day trip for {people} {'person' if people == 1 else 'people'} from {a} "
            f"{where}, from {start} to {end}, with a budget of ${rng.randrange(800, 20000, 50):,}.")
    extras = [f" We would like to try {rng.choice(CUISINES)} cuisine.",
              f" The accommodation should be {rng.choice(ROOM_TYPES)}.",
              f" The place must allow {rng.choice(HOUSE_RULES)}.",
              f" Transportation: {rng.choice(TRANSPORT)}."]
    return text + "".join(rng.sample(extras, rng.randint(0, 3)))


def task_texts(n: int, seed: int, exclude: set[str] | frozenset = frozenset()) -> list[str]:
    """``n`` distinct task texts, half ALFWorld-like and half TravelPlanner-like, none in exclude."""
    rng = random.Random(seed)
    seen = set(exclude)
    out: list[str] = []
    while len(out) < n:
        text = _alfworld(rng) if rng.random() < 0.5 else _travel(rng)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def corpus_vectors(texts: list[str], embedder, log=print, chunk: int = 5000) -> tuple[np.ndarray, dict]:
    """The texts' vectors from ``embedder`` (its name labels the cache file), computed once."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"task-corpus-{embedder.name}-{len(texts)}-{digest}.npy"
    if path.exists():
        return np.load(path), {"cached": str(path)}
    CACHE.mkdir(parents=True, exist_ok=True)
    out = np.empty((len(texts), embedder.dim), np.float32)
    t0 = time.perf_counter()
    for lo in range(0, len(texts), chunk):
        out[lo:lo + chunk] = embedder.embed(texts[lo:lo + chunk])
        log(f"embedded {min(lo + chunk, len(texts))}/{len(texts)} in {time.perf_counter() - t0:.0f} s")
    seconds = time.perf_counter() - t0
    tmp = path.with_name(path.stem + ".partial.npy")
    np.save(tmp, out)
    os.replace(tmp, path)  # whole or not at all
    return out, {"embedded_s": round(seconds, 1), "texts_per_s": round(len(texts) / seconds, 1)}
