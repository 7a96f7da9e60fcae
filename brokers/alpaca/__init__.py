"""Alpaca adapter (needs the ``alpaca`` extra: ``pip install 'execution-gateway[alpaca]'``)."""

from brokers.alpaca.broker import AlpacaBroker

__all__ = ["AlpacaBroker"]
