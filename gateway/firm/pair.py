"""Who of an active/standby pair trades: the holder of the account's session advisory lock.

The lock is taken on the journal's own session (``gateway.store.pg``), never on another: the
session that holds the lock is the only one an intent can be committed in. When that session
ends (the process killed, the host gone, the session terminated) PostgreSQL releases the lock
and the deposed active's next commit fails; the standby's next try takes the lock.

A standby also holds its ``gateway_id`` lock while it waits, so a twin id refuses to start
whichever role it would have had; the lock is let go just before the active part of the gateway
(the firm link) takes it on its own session.
"""

from __future__ import annotations

import contextlib
import logging

import psycopg

from gateway.config.firm import FirmSettings
from gateway.firm.errors import FirmUnavailable, GatewayIdInUse
from gateway.firm.schema import ACCOUNT_LOCK_CLASS, GATEWAY_LOCK_CLASS
from gateway.store.pg import PgConn, PgDriver, open_pg_journal

log = logging.getLogger("gateway.firm.pair")


def one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


def journal_session(dsn: str, settings: FirmSettings) -> PgConn:
    """A session for the journal: autocommit (transactions are the journal's BEGIN/COMMIT), and
    a network that stops answering ends it within about takeover_s rather than TCP's minutes."""
    bound_ms = max(1000, int(settings.takeover_s * 1000))
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(2, int(settings.takeover_s)),
            keepalives=1,
            keepalives_idle=max(1, int(settings.takeover_s / 2)),
            keepalives_interval=1,
            keepalives_count=2,
            tcp_user_timeout=bound_ms,
            application_name=f"gateway:{settings.gateway_id}"[:63],
        )
    except psycopg.Error as exc:
        raise FirmUnavailable(f"cannot connect to the firm's PostgreSQL: {one_line(exc)}") from exc


class PairLock:
    """The account lock, tried on the journal's session; the session is opened anew after it
    was lost (a standby's session may drop while it waits)."""

    def __init__(self, settings: FirmSettings, dsn: str) -> None:
        self.settings = settings
        self._dsn = dsn
        self._conn: PgConn | None = None
        self._holds_id = False
        self.last_error: str | None = None

    @property
    def account(self) -> str:
        return self.settings.account_name

    def _session(self) -> PgConn:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            conn = journal_session(self._dsn, self.settings)
            self._conn = conn
            self._holds_id = False
        return self._conn

    def _try(self, conn: PgConn, lock_class: int, name: str) -> bool:
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (lock_class, name)
        ).fetchone()
        return bool(row and row[0])

    def try_lead(self) -> bool:
        """True once this session holds the account's lock. GatewayIdInUse when another
        running gateway has this gateway_id; FirmUnavailable (or False, once it ran) when the
        server cannot be reached."""
        try:
            conn = self._session()
            if not self._holds_id:
                if not self._try(conn, GATEWAY_LOCK_CLASS, self.settings.gateway_id):
                    raise GatewayIdInUse(
                        f"firm.gateway_id {self.settings.gateway_id!r} is in use by another "
                        "running gateway of this firm: every gateway needs its own id"
                    )
                self._holds_id = True
            leads = self._try(conn, ACCOUNT_LOCK_CLASS, self.account)
        except psycopg.Error as exc:
            self.last_error = one_line(exc)
            self.close()
            raise FirmUnavailable(f"the firm's PostgreSQL failed: {self.last_error}") from exc
        self.last_error = None
        return leads

    def _firm_rows(self, conn: PgConn) -> bool:
        row = conn.execute("SELECT to_regclass('firm_gateways') IS NOT NULL").fetchone()
        return bool(row and row[0])  # the firm's tables exist once any active gateway ran

    def announce_standby(self) -> None:
        """This member's row in the firm (``gateway firm status``): role standby, nothing
        exposed, its heartbeat the time of its last try."""
        conn = self._conn
        if conn is None:
            return
        try:
            if self._firm_rows(conn):
                conn.execute(
                    """INSERT INTO firm_gateways (gateway_id, account, role, state)
                    VALUES (%s, %s, 'standby', 'standby')
                    ON CONFLICT (gateway_id) DO UPDATE SET account = EXCLUDED.account,
                        role = 'standby', state = 'standby', gross_exposure = 0,
                        heartbeat = now()""",
                    (self.settings.gateway_id, self.account),
                )
        except psycopg.Error as exc:
            log.warning("standby: its row in the firm was not written: %s", one_line(exc))

    def take_over_rows(self) -> None:
        """With the lock: the other members of the pair are the account's past, not a second
        account: their exposure and reservations stop counting (this member's row counts the
        account's positions from its start on)."""
        conn = self._conn
        assert conn is not None, "try_lead() first"
        if not self._firm_rows(conn):
            return
        with conn.transaction():
            others = conn.execute(
                """UPDATE firm_gateways SET role = 'standby', state = 'deposed',
                    gross_exposure = 0
                WHERE account = %s AND gateway_id <> %s RETURNING gateway_id""",
                (self.account, self.settings.gateway_id),
            ).fetchall()
            conn.execute(
                "DELETE FROM firm_reservations WHERE gateway_id = ANY(%s)",
                ([row[0] for row in others],),
            )

    def journal(self) -> PgDriver:
        """The journal on the session that holds the lock (the gateway_id lock let go for the
        firm link). Only after try_lead() returned True."""
        conn = self._conn
        assert conn is not None, "try_lead() first"
        with contextlib.suppress(psycopg.Error):
            conn.execute(
                "SELECT pg_advisory_unlock(%s, hashtext(%s))",
                (GATEWAY_LOCK_CLASS, self.settings.gateway_id),
            )
        self._holds_id = False
        self._conn = None  # the journal owns it from here
        try:
            return open_pg_journal(conn, self.account)
        except BaseException:
            conn.close()  # the lock goes with it
            raise

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
        self._holds_id = False
