"""Bearer tokens, each bound to one namespace.

Configured from a file (one ``token=namespace`` per line, ``#`` comments) or from the environment
(``MEMP_TOKENS="token1=ns1,token2=ns2"``). A request's namespace is always the one its token maps
to; no endpoint takes a namespace from the request, so a token cannot reach another namespace.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from memp._errors import InvalidInputError
from memp.store.base import check_namespace

MIN_TOKEN_CHARS = 16


def parse_tokens(text: str, *, source: str = "MEMP_TOKENS") -> dict[str, str]:
    """``token=namespace`` pairs separated by commas or newlines -> {token: namespace}."""
    tokens: dict[str, str] = {}
    for n, item in enumerate(text.replace(",", "\n").splitlines(), 1):
        item = item.split("#", 1)[0].strip()
        if not item:
            continue
        token, sep, namespace = (part.strip() for part in item.partition("="))
        if not sep or not token or not namespace:
            raise InvalidInputError(f"{source}, entry {n}: expected token=namespace, got {item!r}")
        if len(token) < MIN_TOKEN_CHARS:
            raise InvalidInputError(
                f"{source}, entry {n}: token is shorter than {MIN_TOKEN_CHARS} characters; "
                "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(24))'`"
            )
        if token in tokens and tokens[token] != namespace:
            raise InvalidInputError(f"{source}, entry {n}: the same token maps to two namespaces")
        tokens[token] = check_namespace(namespace)
    return tokens


def load_tokens(path: str | Path | None = None, env: str | None = None) -> dict[str, str]:
    """Tokens from a file and/or ``MEMP_TOKENS``; an empty result is refused."""
    tokens: dict[str, str] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InvalidInputError(f"tokens file {p} does not exist; write one token=namespace per line")
        tokens.update(parse_tokens(p.read_text(encoding="utf-8"), source=str(p)))
    env = os.environ.get("MEMP_TOKENS") if env is None else env
    if env:
        tokens.update(parse_tokens(env))
    if not tokens:
        raise InvalidInputError(
            "no access tokens configured; set MEMP_TOKENS='token=namespace,…' or pass --tokens FILE"
        )
    return tokens


class TokenMap:
    """Looks tokens up in constant time per candidate, so timing does not leak a prefix."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._items = [(t.encode(), ns) for t, ns in tokens.items()]

    def namespace(self, token: str | None) -> str | None:
        if not token:
            return None
        given = token.encode()
        found = None
        for candidate, namespace in self._items:
            if hmac.compare_digest(candidate, given):
                found = namespace
        return found
