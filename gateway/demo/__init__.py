"""``gateway demo``: a guided first run on the simulated broker, outside the core."""

from gateway.demo.run import run_demo

__all__ = ["run_demo"]
