"""The local stack: the real Lambda Runtime Interface Emulator running our
handler through ``awslambdaric`` (as the Lambda base image does), and a thin
API Gateway front that turns ``POST /predict`` into a REST (v1) proxy event.
No Docker needed. Start it with ``flowers-serve`` (or ``nox -s serve``).
"""

from flowers_serving.local.gateway import Gateway, build_proxy_event
from flowers_serving.local.rie import RieWorker, find_rie_binary, free_port

__all__ = ["Gateway", "RieWorker", "build_proxy_event", "find_rie_binary", "free_port"]
