"""The ``firm:`` section of gateway.yaml: several gateways sharing one PostgreSQL.

Only settings live here (no psycopg): a gateway without a firm section never imports the
driver. The DSN itself is a secret and never appears in YAML: ``dsn_env`` names the
environment variable that holds it (systemd's EnvironmentFile).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field

from brokers.base import PositiveNum
from gateway.config.risk import Section

IDENT = r"^[A-Za-z0-9._:-]{1,64}$"


class FirmDsnMissing(Exception):
    """The environment variable named by ``firm.dsn_env`` is not set (or empty)."""


class FirmSettings(Section):
    dsn_env: str = Field(default="GATEWAY_FIRM_DSN", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    gateway_id: str = Field(pattern=IDENT)
    # Gateways with the same account form an active/standby pair (part 2); default: its own.
    account: str | None = Field(default=None, pattern=IDENT)
    on_disconnect: Literal["halt", "continue"] = "halt"
    grace_s: float = Field(default=5.0, gt=0, le=3600)
    takeover_s: float = Field(default=5.0, gt=0, le=3600)
    max_gross_exposure: PositiveNum | None = None

    @property
    def account_name(self) -> str:
        return self.account or self.gateway_id

    @property
    def limit(self) -> Decimal | None:
        return self.max_gross_exposure

    def dsn(self, environ: Mapping[str, str]) -> str:
        value = environ.get(self.dsn_env, "").strip()
        if not value:
            raise FirmDsnMissing(
                f"firm.dsn_env: the environment variable {self.dsn_env} is not set: put the "
                "firm's postgresql:// URL in it (the EnvironmentFile on a production host)"
            )
        return value

    def secrets(self, environ: Mapping[str, str]) -> list[str]:
        """What the logs must never show: the DSN, and its password on its own (a driver's
        message may quote it apart from the URL)."""
        value = environ.get(self.dsn_env, "").strip()
        if not value:
            return []
        found = [value]
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
        return found
