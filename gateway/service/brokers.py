"""Building the broker adapter the config names (the SDK extras are imported only when named)."""

from __future__ import annotations

from collections.abc import Mapping

from brokers.base import Broker
from gateway.config import GatewayConfig


def build_broker(config: GatewayConfig, environ: Mapping[str, str]) -> Broker:
    """The adapter the config names; live or paper endpoints follow ``gateway.mode`` alone."""
    name = config.gateway.broker
    paper = config.gateway.mode == "paper"
    if name == "simulated":
        from brokers.simulated.broker import SimulatedBroker

        sim = config.brokers.simulated
        return SimulatedBroker(
            initial_cash=sim.initial_cash,
            quotes=dict(sim.quotes),
            tick_s=sim.tick_s,
            margin_multiplier=sim.margin_multiplier,
            state_path=sim.state_path(config.gateway.state_dir),
            faults=sim.faults,
            fill_quantity_per_tick=sim.fill_quantity_per_tick,
        )
    if name == "alpaca":
        from brokers.alpaca.broker import AlpacaBroker

        a = config.brokers.alpaca
        urls = {
            k: v
            for k, v in {
                "base_url": a.base_url,
                "data_url": a.data_url,
                "trading_stream_url": a.trading_stream_url,
                "data_stream_url": a.data_stream_url,
            }.items()
            if v
        }
        return AlpacaBroker.from_env(paper=paper, feed=a.feed, environ=environ, **urls)  # type: ignore[no-any-return]
    from brokers.ib.broker import IBBroker

    ib = config.brokers.ib
    return IBBroker(  # type: ignore[no-any-return]
        host=ib.host,
        port=ib.port,
        client_id=ib.client_id,
        account=ib.account,
        paper=paper,
        gateway=ib.gateway,
        allow_delayed_data=ib.allow_delayed_data,
    )
