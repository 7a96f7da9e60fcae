"""The service: every part built from the config and wired together (``GatewayService``)."""

from gateway.service.brokers import build_broker
from gateway.service.core import GatewayService
from gateway.store.statedir import HALT_FILE, JOURNAL_FILE

__all__ = ["HALT_FILE", "JOURNAL_FILE", "GatewayService", "build_broker"]
