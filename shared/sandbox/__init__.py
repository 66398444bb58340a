"""Harvest sandbox: a strict local fake of Greenhouse Harvest v3, for unit tests (``MockTransport``),
integration tests, the demo and benchmarks (loopback HTTP server)."""

from shared.sandbox.app import Sandbox
from shared.sandbox.faults import DropConnection
from shared.sandbox.server import SandboxServer
from shared.sandbox.state import SandboxConfig

__all__ = ["DropConnection", "Sandbox", "SandboxConfig", "SandboxServer"]
