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
(the two kinds of execution environment).
"""

from flowers_serving.local.gateway import ROUTES, Gateway, build_proxy_event
from flowers_serving.local.invoke import INVOKE_PATH, InvokeFront
from flowers_serving.local.pool import INVOKE_PAYLOAD_LIMIT, FunctionPool
from flowers_serving.local.pyruntime import PythonRuntime
from flowers_serving.local.rie import RieRuntime, RieWorker, find_rie_binary, free_port, rie_platform_reason
from flowers_serving.local.server import PortInUse
from flowers_serving.local.stack import LocalStack

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
