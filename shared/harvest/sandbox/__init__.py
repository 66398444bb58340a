"""Harvest sandbox: a strict local fake of Greenhouse Harvest v3, for unit tests (``MockTransport``),
integration tests, the demo and benchmarks (loopback HTTP server)."""

from shared.harvest.sandbox import seed
from shared.harvest.sandbox.app import Sandbox
from shared.harvest.sandbox.faults import DropConnectionError
from shared.harvest.sandbox.server import SandboxServer
from shared.harvest.sandbox.state import SandboxConfig

__all__ = ["DropConnectionError", "Sandbox", "SandboxConfig", "SandboxServer", "seed"]
