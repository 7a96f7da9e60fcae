"""Building the service's firm part: the one place that imports psycopg's side of the gateway,
and only when gateway.yaml has a ``firm:`` section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import ConfigError

if TYPE_CHECKING:
    from gateway.service.core import GatewayService
    from gateway.service.firm import FirmService


def build_firm(service: GatewayService) -> FirmService:
    """The firm part with its resume guard installed; ConfigError (exit 2) for what only a fix
    heals: psycopg not installed, the DSN's variable unset."""
    try:
        from gateway.service.firm import FirmService
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "psycopg":
            raise
        raise ConfigError(
            ["firm: needs psycopg, which is not installed: pip install 'execution-gateway[firm]'"]
        ) from None
    firm = FirmService(
        service.config,
        engine=service.engine,
        halt=service.halt,
        controls=service.controls,
        status=service.status,
        state_dir=service.state_dir.path,
        environ=service.environ,
    )
    service.controls.resume_guard = firm.resume_guard
    return firm
