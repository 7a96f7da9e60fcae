"""What the firm layer raises; each is translated from psycopg's errors at this package's edge.

    FirmError
     ├── FirmUnavailable   PostgreSQL cannot be reached, or the session was lost: fail closed
     ├── FirmSchemaError   the firm schema is newer than this gateway, or cannot be migrated
     └── GatewayIdInUse    another running gateway of the firm holds this gateway_id

Refusals: a signal that would take the firm's gross exposure past ``max_gross_exposure``, or
that cannot be checked because PostgreSQL is out of reach, is rejected ``firm_exposure``; a
local resume while the firm halt is in force is refused 409 ``firm_halted``, and while
PostgreSQL is out of reach (``on_disconnect: halt``) 409 ``firm_unreachable``.
"""

from __future__ import annotations


class FirmError(Exception):
    """A problem with the firm's PostgreSQL; the message is one line for an operator."""


class FirmUnavailable(FirmError):
    """PostgreSQL cannot be reached now (or the session ended)."""


class FirmSchemaError(FirmError):
    """The firm schema cannot be used by this gateway."""


class GatewayIdInUse(FirmError):
    """Another running gateway holds this gateway_id's session lock."""
