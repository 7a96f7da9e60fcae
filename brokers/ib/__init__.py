"""Interactive Brokers adapter on ib_async (needs the ``ib`` extra:
``pip install 'execution-gateway[ib]'``)."""

from brokers.ib.broker import IBBroker

__all__ = ["IBBroker"]
