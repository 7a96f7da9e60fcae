"""The simulated paper broker: the embedded default and the venue for fire drills."""

from brokers.simulated.broker import SimulatedBroker

__all__ = ["SimulatedBroker"]
