"""``python -m memp.llm._llama_server --config_file ...``: llama-cpp-python's server, made safe here.

llama.cpp repacks weights into "extra buffer types" for speed; on a CPU that reports AMX while
the kernel (or a sandbox) has not granted the AMX tile state, the AMX matmul crashes the server
with a segfault on its first token. A 135M model gains nothing worth that risk, so the extra
buffer types are switched off before any model loads.
"""

from __future__ import annotations

import llama_cpp.llama_cpp as _native

_default_params = _native.llama_model_default_params


def _safe_model_params():  # type: ignore[no-untyped-def]
    params = _default_params()
    params.use_extra_bufts = False
    return params


_native.llama_model_default_params = _safe_model_params

if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    main()
