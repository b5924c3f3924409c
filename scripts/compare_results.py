"""Compare two results.json exactly, ignoring timing fields.

    python scripts/compare_results.py BEFORE/results.json AFTER/results.json

Every value of BEFORE must be in AFTER, equal (keys only AFTER has are listed, not counted as
differences). Exit code 1 when anything differs. Used to check that a refactoring of the
experiments keeps the numbers of the same seeds.
"""
import json
import sys

TIMING = {"seconds", "seconds_all_runs", "machine"}


def walk(a, b, path, diffs, added):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            if k in TIMING:
                continue
            if k not in b:
                diffs.append(f"{path}/{k}: missing after")
            else:
                walk(a[k], b[k], f"{path}/{k}", diffs, added)
        added += [f"{path}/{k}" for k in b if k not in a and k not in TIMING]
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", diffs, added)
    elif a != b:
        diffs.append(f"{path}: {json.dumps(a)[:120]} != {json.dumps(b)[:120]}")


before, after = (json.load(open(p)) for p in sys.argv[1:3])
diffs, added = [], []
walk(before, after, "", diffs, added)
print(f"{len(diffs)} differences; {len(added)} keys only after: {', '.join(added) or '-'}")
for d in diffs[:60]:
    print("  " + d)
sys.exit(1 if diffs else 0)
