"""The SQL text of the SQLite and PostgreSQL stores, side by side.

Both dialects implement the same rules, so keeping them together makes it easy to check that
they agree. A key's row is ``(consumer_group, key, owner, lease_until, done_at, expires_at)``
with the primary key ``(consumer_group, key)``:

- a row may be claimed when it expired (``expires_at <= now``: absent in all but storage, so
  purge timing never changes a decision), or when it is not done and its lease is the
  claimer's own or has lapsed;
- a transactional claim writes the row as done straight away (``done_at = now``) because
  nobody sees it before COMMIT; the keys whose unit did not complete are deleted again before
  COMMIT (``unclaim``), so a batch whose units all succeed writes each key once;
- a non-transactional claim writes ``lease_until = now + lease``; ``settle`` then marks the
  completed keys done and deletes the released ones, each only while the row is still the
  owner's and not done;
- ``expires_at`` is ``done_at + ttl`` for done rows and ``lease_until + ttl`` for leased ones,
  so abandoned leases are purged too.

Table names cannot be bound as parameters; they are checked identifiers (see
:func:`~eventplatform.idempotency.store.table_names`) spliced in once per store.
"""

from __future__ import annotations

__all__ = ["PostgresStatements", "SqliteStatements"]


class SqliteStatements:
    """The SQLite store's statements (named ``:params``), with the table name spliced in."""

    def __init__(self, table: str, index: str) -> None:
        self.create = (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " consumer_group TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL,"
            " lease_until REAL, done_at REAL, expires_at REAL NOT NULL,"
            " PRIMARY KEY (consumer_group, key))"
        )
        self.index = f"CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at)"
        keys = "key IN (SELECT value FROM json_each(:keys))"
        # An existing row may be taken when it expired (absent in all but storage), or when it
        # is not done and its lease is ours or has lapsed. The WHERE makes every other row a
        # no-op, so RETURNING lists exactly the keys this call claimed.
        self.claim = (
            f"INSERT INTO {table} (consumer_group, key, owner, lease_until, done_at, expires_at)"
            " SELECT :group, value, :owner, :lease_until, :done_at, :expires_at"
            " FROM json_each(:keys) WHERE true"  # `WHERE true` disambiguates ON CONFLICT
            " ON CONFLICT (consumer_group, key) DO UPDATE SET owner = excluded.owner,"
            " lease_until = excluded.lease_until, done_at = excluded.done_at,"
            " expires_at = excluded.expires_at"
            f" WHERE {table}.expires_at <= :now OR ({table}.done_at IS NULL"
            f" AND ({table}.owner = excluded.owner OR {table}.lease_until <= :now))"
            " RETURNING key"
        )
        self.done_among = (
            f"SELECT key FROM {table} WHERE consumer_group = :group AND done_at IS NOT NULL"
            f" AND expires_at > :now AND {keys}"
        )
        self.complete = (
            f"UPDATE {table} SET done_at = :now, lease_until = NULL, expires_at = :expires_at"
            f" WHERE consumer_group = :group AND owner = :owner AND done_at IS NULL AND {keys}"
            " RETURNING key"
        )
        self.release = (
            f"DELETE FROM {table} WHERE consumer_group = :group AND owner = :owner"
            f" AND done_at IS NULL AND {keys}"
        )
        # In a transactional batch the claim wrote the rows as done; the keys that did not
        # complete are removed again before COMMIT.
        self.unclaim = (
            f"DELETE FROM {table} WHERE consumer_group = :group AND owner = :owner AND {keys}"
        )
        self.renew = (
            f"UPDATE {table} SET lease_until = :lease_until, expires_at = :expires_at"
            f" WHERE consumer_group = :group AND owner = :owner AND done_at IS NULL AND {keys}"
            " RETURNING key"
        )
        self.lookup = (
            f"SELECT key, owner, lease_until, done_at, expires_at FROM {table}"
            f" WHERE consumer_group = :group AND {keys}"
        )
        self.purge = (
            f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"
            " WHERE expires_at <= :now ORDER BY expires_at LIMIT :limit)"
        )


#: The name of the key-unit claim prepared on every pooled PostgreSQL connection.
CLAIM_ONE = "eventplatform_claim_one"


class PostgresStatements:
    """The PostgreSQL store's statements (``$n`` params), with the table name spliced in."""

    def __init__(self, table: str, index: str) -> None:
        self.create = (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " consumer_group text NOT NULL, key text NOT NULL, owner text NOT NULL,"
            " lease_until timestamptz, done_at timestamptz, expires_at timestamptz NOT NULL,"
            " PRIMARY KEY (consumer_group, key))"
        )
        self.index = f"CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at)"
        clock = "clock AS (SELECT coalesce($4::timestamptz, clock_timestamp()) AS now)"
        # $1 group, $2 keys, $3 owner, $4 now (NULL: server clock), $5 transactional,
        # $6 lease seconds, $7 ttl seconds.
        self.claim = f"""
WITH {clock},
input AS (SELECT DISTINCT k FROM unnest($2::text[]) AS u(k)),
blocked AS (
    SELECT t.key, t.done_at IS NOT NULL AS done
    FROM input AS i JOIN {table} AS t ON t.consumer_group = $1 AND t.key = i.k, clock
    WHERE t.expires_at > clock.now
      AND (t.done_at IS NOT NULL OR (t.owner <> $3 AND t.lease_until > clock.now))
),
claimed AS (
    INSERT INTO {table} AS cur (consumer_group, key, owner, lease_until, done_at, expires_at)
    SELECT $1, i.k, $3,
           CASE WHEN $5 THEN NULL ELSE clock.now + make_interval(secs => $6::float8) END,
           CASE WHEN $5 THEN clock.now END,
           clock.now + make_interval(secs => CASE WHEN $5 THEN $7::float8
                                                 ELSE $6::float8 + $7::float8 END)
    FROM input AS i, clock
    WHERE NOT EXISTS (SELECT 1 FROM blocked AS b WHERE b.key = i.k)
    ORDER BY i.k
    ON CONFLICT (consumer_group, key) DO UPDATE
        SET owner = excluded.owner, lease_until = excluded.lease_until,
            done_at = excluded.done_at, expires_at = excluded.expires_at
        WHERE cur.expires_at <= (SELECT now FROM clock)
           OR (cur.done_at IS NULL AND (cur.owner = excluded.owner
                                        OR cur.lease_until <= (SELECT now FROM clock)))
    RETURNING cur.key
)
SELECT i.k, c.key IS NOT NULL AS fresh, coalesce(b.done, false) AS done
FROM input AS i LEFT JOIN claimed AS c ON c.key = i.k LEFT JOIN blocked AS b ON b.key = i.k
"""
        # A key unit's claim of one key: $1 group, $2 key, $3 owner, $4 now (NULL: server
        # clock), $5 ttl seconds. It inserts (or takes over) the row as done; the command tag
        # says whether it did ("INSERT 0 1"). A row it may not take is locked by ON CONFLICT DO
        # UPDATE anyway, so a key in another member's open transaction waits for that
        # transaction, as in a batch. It is prepared once per pooled connection (SQL PREPARE,
        # on first use: see postgres_units) and sent with its BEGIN in one simple-query
        # message, which takes no parameters, so the EXECUTE's values are literals:
        # {group} {key} {owner} {now} {ttl}. The server parses the short EXECUTE only.
        self.prepare_claim_one = (
            f"PREPARE {CLAIM_ONE}(text, text, text, timestamptz, float8) AS"
            f" INSERT INTO {table} AS cur"
            " (consumer_group, key, owner, lease_until, done_at, expires_at)"
            " SELECT $1, $2, $3, NULL, c.now, c.now + make_interval(secs => $5)"
            " FROM (SELECT coalesce($4, clock_timestamp()) AS now) AS c"
            " ON CONFLICT (consumer_group, key) DO UPDATE"
            " SET owner = excluded.owner, lease_until = NULL, done_at = excluded.done_at,"
            " expires_at = excluded.expires_at"
            " WHERE cur.expires_at <= excluded.done_at OR (cur.done_at IS NULL"
            " AND (cur.owner = excluded.owner OR cur.lease_until <= excluded.done_at))"
        )
        self.begin_claim_one = (
            "BEGIN ISOLATION LEVEL READ COMMITTED;"
            f" EXECUTE {CLAIM_ONE}({{group}}, {{key}}, {{owner}}, {{now}}, {{ttl}})"
        )
        # Why a unit's claim took nothing: $1 group, $2 key, $3 now (NULL: server clock).
        self.done_one = (
            f"SELECT done_at IS NOT NULL FROM {table}"
            " WHERE consumer_group = $1 AND key = $2"
            " AND expires_at > coalesce($3::timestamptz, clock_timestamp())"
        )
        # $1 group, $2 completed, $3 owner, $4 now, $5 pending, $6 ttl seconds.
        self.settle = f"""
WITH {clock},
done AS (
    UPDATE {table} AS cur
    SET done_at = clock.now, lease_until = NULL,
        expires_at = clock.now + make_interval(secs => $6::float8)
    FROM clock, unnest($2::text[]) AS u(k)
    WHERE cur.consumer_group = $1 AND cur.key = u.k AND cur.owner = $3
      AND cur.done_at IS NULL
    RETURNING cur.key
),
released AS (
    DELETE FROM {table} AS cur USING unnest($5::text[]) AS u(k)
    WHERE cur.consumer_group = $1 AND cur.key = u.k AND cur.owner = $3
      AND cur.done_at IS NULL
)
SELECT key FROM done
"""
        # Transactional batches: the claim wrote the rows as done; take back the unfinished.
        self.unclaim = (
            f"DELETE FROM {table} AS cur USING unnest($3::text[]) AS u(k)"
            " WHERE cur.consumer_group = $1 AND cur.key = u.k AND cur.owner = $2"
        )
        # $1 group, $2 keys, $3 owner, $4 now, $5 lease seconds, $6 ttl seconds.
        self.renew = f"""
WITH {clock}
UPDATE {table} AS cur
SET lease_until = clock.now + make_interval(secs => $5::float8),
    expires_at = clock.now + make_interval(secs => $5::float8 + $6::float8)
FROM clock, unnest($2::text[]) AS u(k)
WHERE cur.consumer_group = $1 AND cur.key = u.k AND cur.owner = $3 AND cur.done_at IS NULL
RETURNING cur.key
"""
        self.lookup = (
            "SELECT t.key, t.owner, t.lease_until, t.done_at, t.expires_at"
            f" FROM unnest($2::text[]) AS u(k) JOIN {table} AS t"
            " ON t.consumer_group = $1 AND t.key = u.k"
        )
        # SKIP LOCKED: rows an open batch holds are left for the next purge.
        self.purge = f"""
WITH clock AS (SELECT coalesce($1::timestamptz, clock_timestamp()) AS now),
victims AS (
    SELECT t.consumer_group, t.key FROM {table} AS t, clock
    WHERE t.expires_at <= clock.now ORDER BY t.expires_at LIMIT $2
    FOR UPDATE OF t SKIP LOCKED
)
DELETE FROM {table} AS t USING victims AS v
WHERE t.consumer_group = v.consumer_group AND t.key = v.key
"""
