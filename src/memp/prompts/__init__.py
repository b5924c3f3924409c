"""Prompts are data: one YAML file per purpose, each with Jinja ``system`` and ``user`` templates.

``render(name, **values)`` returns chat messages. Undefined values are an error, not silence, so
a template and its caller cannot drift apart unnoticed.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import jinja2
import yaml

from memp._errors import InvalidInputError

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


@lru_cache(maxsize=None)
def load(name: str) -> dict[str, str]:
    try:
        text = resources.files("memp.prompts").joinpath(f"{name}.yaml").read_text("utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"no prompt template named {name!r} in memp/prompts") from None
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "user" not in data:
        raise InvalidInputError(f"prompt template {name!r} must define at least 'user'")
    return data


def render(name: str, **values) -> list[dict[str, str]]:
    """Chat messages for the named template, filled with ``values``."""
    template = load(name)
    messages = []
    for role in ("system", "user"):
        if role in template:
            content = _ENV.from_string(template[role]).render(**values).strip()
            messages.append({"role": role, "content": content})
    return messages
