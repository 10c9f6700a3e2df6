"""The local stack: the handler in real Lambda Runtime Interface Emulators (on
Linux; a built-in Python runtime elsewhere) behind two fronts of our own — the
direct-invoke URL on :8080 and an API Gateway front on :3000 that turns
``POST /predict`` into a REST (v1) proxy event. The fronts queue invokes (one
at a time per execution environment, as the RIE requires), enforce Lambda's
and API Gateway's limits and time limits, and a runtime that dies is
restarted. No Docker needed. Start it with ``flowers-serve`` (or ``nox -s serve``).

Modules: ``stack`` (the whole, :class:`LocalStack`), ``server`` (the small
HTTP/1.1 server on h11 both fronts use), ``invoke`` and ``gateway`` (the two
fronts), ``pool`` (the invoke queue and supervisor), ``rie`` and ``pyruntime``
(the two kinds of execution environment), ``ports``
(free and busy ports) and ``messages`` (requests, responses, the JSON error).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowers_serving.local.gateway import ROUTES, Gateway, build_proxy_event
    from flowers_serving.local.invoke import InvokeFront
    from flowers_serving.local.pool import INVOKE_PAYLOAD_LIMIT, FunctionPool
    from flowers_serving.local.ports import PortInUse, free_port
    from flowers_serving.local.pyruntime import PythonRuntime
    from flowers_serving.local.rie import INVOKE_PATH, RieRuntime, RieWorker, find_rie_binary, rie_platform_reason
    from flowers_serving.local.stack import LocalStack

# Imported on first use: the container recipe's test drives a bare RieWorker without the fronts' h11.
_LAZY = {
    "INVOKE_PATH": "rie",
    "INVOKE_PAYLOAD_LIMIT": "pool",
    "ROUTES": "gateway",
    "FunctionPool": "pool",
    "Gateway": "gateway",
    "InvokeFront": "invoke",
    "LocalStack": "stack",
    "PortInUse": "ports",
    "PythonRuntime": "pyruntime",
    "RieRuntime": "rie",
    "RieWorker": "rie",
    "build_proxy_event": "gateway",
    "find_rie_binary": "rie",
    "free_port": "ports",
    "rie_platform_reason": "rie",
}

__all__ = [
    "INVOKE_PATH",
    "INVOKE_PAYLOAD_LIMIT",
    "ROUTES",
    "FunctionPool",
    "Gateway",
    "InvokeFront",
    "LocalStack",
    "PortInUse",
    "PythonRuntime",
    "RieRuntime",
    "RieWorker",
    "build_proxy_event",
    "find_rie_binary",
    "free_port",
    "rie_platform_reason",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowers_serving.local' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"flowers_serving.local.{module}"), name)
    globals()[name] = value
    return value
