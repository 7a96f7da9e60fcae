"""The strategy client: what a strategy imports to talk to the gateway (httpx, async and sync).

``guard(strategy, symbol)`` is the replaced system's ``try: generate_signals ... except:
record_failure; return None`` done once, right: an exception inside the block is reported as a
failure (and re-raised unless ``suppress=True``), a clean exit is reported as a success.

    async with AsyncGatewayClient("http://127.0.0.1:8787", token) as gw:
        async with gw.guard("momentum", "AAPL"):
            decision = await gw.submit("sig-1", "momentum", "AAPL", "buy", 10)

The orders a strategy manages: ``order()``, ``orders()``, ``cancel()``, ``replace()``,
``fills()``; and ``events()``, which follows the event stream and reconnects by itself:

    async for event in gw.events(after=0, strategy="momentum"):
        if event.type == "fill":
            print(event.id, event.data)

Errors: ``GatewayClientError`` (its ``status_code``, ``code`` and ``body``) for every request
the gateway refused; ``httpx.HTTPError`` for a request that never got an answer (only
``events()`` rides those out, by reconnecting).
"""

from gateway.client._async import AsyncGatewayClient
from gateway.client._common import Backoff, GatewayClientError
from gateway.client._events import Event, StateChange
from gateway.client._sync import GatewayClient

__all__ = [
    "AsyncGatewayClient",
    "Backoff",
    "Event",
    "GatewayClient",
    "GatewayClientError",
    "StateChange",
]
