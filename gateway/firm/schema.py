"""The firm's tables in PostgreSQL, versioned like the journal's: ``firm_schema.version`` says
which migrations ran; each runs once, in one transaction, under an advisory lock so gateways
starting together never migrate twice.

    firm_control       one row: the firm halt in force (halted, kill, reason, since, seq)
    firm_events        every firm halt, kill and resume, in order
    firm_gateways      one row a gateway: account, role, state, equity, gross exposure
                       (positions plus open and in-flight orders), heat, heartbeat
    firm_reservations  exposure a gateway reserved for orders not yet in its row

A role with only DML rights on these tables can run a gateway once the schema is current (see
README, "The firm"); migrating needs a role that may create tables.
"""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from gateway.firm.errors import FirmSchemaError

Conn = AsyncConnection[TupleRow]

SCHEMA_VERSION = 1
# Advisory lock keys (classid, objid): the first int names what the lock is for.
MIGRATION_LOCK = (0x4647, 1)
GATEWAY_LOCK_CLASS = 0x4677  # objid: hashtext(gateway_id)
ACCOUNT_LOCK_CLASS = 0x4661  # objid: hashtext(account); the active/standby leader lock (part 2)

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE firm_control (
            id integer PRIMARY KEY CHECK (id = 1),
            halted boolean NOT NULL DEFAULT false,
            kill boolean NOT NULL DEFAULT false,
            reason text,
            by_whom text,
            since timestamptz,
            seq bigint NOT NULL DEFAULT 0
        )""",
        "INSERT INTO firm_control (id) VALUES (1)",
        """CREATE TABLE firm_events (
            seq bigserial PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            kind text NOT NULL,
            reason text,
            by_whom text NOT NULL,
            detail text
        )""",
        """CREATE TABLE firm_gateways (
            gateway_id text PRIMARY KEY,
            account text NOT NULL,
            role text NOT NULL DEFAULT 'active',
            state text NOT NULL DEFAULT 'starting',
            equity numeric,
            gross_exposure numeric NOT NULL DEFAULT 0,
            heat numeric,
            max_gross_exposure numeric,
            applied_seq bigint NOT NULL DEFAULT 0,
            started_at timestamptz NOT NULL DEFAULT now(),
            heartbeat timestamptz NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE firm_reservations (
            gateway_id text NOT NULL,
            client_order_id text NOT NULL,
            amount numeric NOT NULL CHECK (amount >= 0),
            at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (gateway_id, client_order_id)
        )""",
    ),
}


async def current_version(conn: Conn) -> int:
    """The schema's version; 0 for a database the firm never used."""
    cur = await conn.execute("SELECT to_regclass('firm_schema') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT max(version) FROM firm_schema")
    row = await cur.fetchone()
    return int(row[0] or 0) if row else 0


async def migrate(conn: Conn) -> int:
    """Bring the schema to SCHEMA_VERSION; a current schema needs no DDL rights at all.

    ``conn`` is an autocommit psycopg AsyncConnection. FirmSchemaError for a schema newer than
    this gateway; psycopg's errors (e.g. no right to create tables) go to the caller.
    """
    version = await current_version(conn)
    if version == SCHEMA_VERSION:
        return version
    if version > SCHEMA_VERSION:
        raise FirmSchemaError(
            f"the firm schema is at version {version}, newer than this gateway's "
            f"{SCHEMA_VERSION}: upgrade this gateway"
        )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS firm_schema (version integer NOT NULL)")
        version = await current_version(conn)  # another gateway may have migrated meanwhile
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO firm_schema (version) VALUES (%s)", (target,))
    return SCHEMA_VERSION
