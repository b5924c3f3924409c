"""JSON that memp can store: parsed, then refused early if a later step could not keep it.

Python's ``json`` accepts text that breaks memp further down: a lone surrogate (``"\\ud800"``)
that no database can encode, nesting deep enough to exhaust the recursion limit, integers of
thousands of digits or beyond 64 bits, NaN and Infinity. The service and the CLI read every
body and every line through ``loads_storable``, so such input is a clear ``InvalidInputError``
before anything is written, never a crash half-way through a write.
"""

from __future__ import annotations

import json
import math
from typing import Any

from memp._errors import InvalidInputError

MAX_DEPTH = 64  # a trajectory is under 10 deep; 64 leaves room for metadata
# An export line wraps a record one level deeper than the request that stored it.
MAX_EXPORT_DEPTH = MAX_DEPTH + 1
MAX_INT = 2**63 - 1  # what SQLite's INTEGER and PostgreSQL's bigint hold


class NotJSONError(InvalidInputError):
    """The input is not UTF-8 JSON at all (as opposed to JSON that memp cannot store)."""


class _Refused(ValueError):
    pass


def _int(text: str) -> int:
    # Checked before int() so a 10,000-digit number is refused without converting it.
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) > MAX_INT:
        raise _Refused(f"the number {text[:24]}{'…' if len(text) > 24 else ''} is beyond 64 bits")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:24]} is out of range")
    return value


def _constant(name: str) -> float:
    raise _Refused(f"{name} is not a JSON number")


def loads_storable(text: str | bytes, what: str = "the input", *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` for input memp will store; ``what`` names the input in the error."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise NotJSONError(f"{what} is not UTF-8 (bad byte at offset {err.start}); "
                               "send UTF-8 text") from None
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except _Refused as err:
        raise InvalidInputError(f"{what}: {err}") from None
    except json.JSONDecodeError as err:
        where = f"column {err.colno}" if err.lineno == 1 else f"line {err.lineno} column {err.colno}"
        raise NotJSONError(f"{what} is not JSON: {err.msg} at {where}") from None
    except RecursionError:
        raise InvalidInputError(f"{what} is nested more than {max_depth} levels deep") from None
    check_storable(value, what, max_depth=max_depth)
    return value


def check_storable(value: Any, what: str = "the input", *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse parsed JSON nested deeper than ``max_depth`` or holding text no database encodes."""
    stack = [(value, 1)]  # iterative, so checking deep input cannot itself hit the recursion limit
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                raise InvalidInputError(f"{what} is nested more than {max_depth} levels deep")
            if isinstance(item, dict):
                for key, inner in item.items():
                    _check_text(key, what)
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            _check_text(item, what)


def _check_text(text: str, what: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidInputError(
            f"{what} holds a lone surrogate (\\u{ord(text[err.start]):04x}), which is not text; "
            "send valid Unicode") from None


__all__ = ["MAX_DEPTH", "MAX_EXPORT_DEPTH", "MAX_INT", "NotJSONError", "check_storable", "loads_storable"]
