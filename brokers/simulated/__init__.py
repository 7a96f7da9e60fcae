"""The simulated paper broker: the embedded default and the venue for fire drills."""

from brokers.simulated.broker import SimulatedBroker
from brokers.simulated.faults import Faults

__all__ = ["Faults", "SimulatedBroker"]
