"""The firm: several gateways sharing one PostgreSQL (v2; see DESIGN "Beyond one host").

    errors.py    the exception tree (no psycopg: importable without the firm extra)
    schema.py    the firm's tables, versioned migrations
    control.py   the firm halt and kill: a row, and its NOTIFY
    link.py      one gateway's sessions with PostgreSQL: reconnect, LISTEN, the grace clock
    exposure.py  the firm exposure limit: one transaction per reservation
    status.py    what ``gateway firm status`` lists
    cli.py       ``gateway firm halt|kill|resume|status|migrate``, straight to PostgreSQL

Only a gateway.yaml with a ``firm:`` section loads any of this but ``errors``.
"""
