"""execution-gateway: the service between trading strategies and their brokers.

What a strategy imports: the client and the two models it exchanges with the gateway. The
service itself (``gateway.service.GatewayService``) and the CLI (``gateway.cli``) live in their
modules.
"""

from gateway.client import AsyncGatewayClient, GatewayClient, GatewayClientError
from gateway.models import Decision, Signal

__all__ = ["AsyncGatewayClient", "Decision", "GatewayClient", "GatewayClientError", "Signal"]
