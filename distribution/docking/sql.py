"""Docking's raw SQL: the webhook outbox's claim and record, composed with psycopg's ``sql``
module (identifiers quoted by the driver, values sent apart as ``%(name)s`` placeholders).

Why raw SQL: each replaces a transaction of several ORM round trips per batch of deliveries
(claim: lock, update, commit; record: a log row per try and an update per outcome). Each is
one statement, atomic on its own.
"""

from psycopg import sql

from .models import ApiKey, ApiNonce, DockingSite, WebhookAttempt, WebhookEvent

_EVENT = sql.Identifier(WebhookEvent._meta.db_table)
_ATTEMPT = sql.Identifier(WebhookAttempt._meta.db_table)
_SITE = sql.Identifier(DockingSite._meta.db_table)


def _claim(where: sql.Composable) -> str:
    return (
        sql.SQL("""
        UPDATE {event} e SET next_attempt_at = %(until)s
          FROM (SELECT id FROM {event} WHERE {where}
                 ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due,
               {site} s
         WHERE e.id = due.id AND s.id = e.site_id
        RETURNING e.id, e.event_id, e.site_id, e.payload, e.status, e.attempts, e.created_at,
                  s.webhook_url, s.webhook_secret_ciphertext, s.webhook_secret_key_id
        """)
        .format(event=_EVENT, site=_SITE, where=where)
        .as_string()
    )


# Due events (all, or only ``event_pks``), then the given events whatever their state (a
# staff resend). Rows another worker holds are skipped, not waited for.
CLAIM_DUE = _claim(sql.SQL("status = 'pending' AND next_attempt_at <= %(now)s"))
CLAIM_DUE_OF = _claim(sql.SQL("status = 'pending' AND next_attempt_at <= %(now)s AND id = ANY(%(pks)s)"))
CLAIM_ANY_OF = _claim(sql.SQL("id = ANY(%(pks)s)"))

# One delivery-log row per try and each event's new state (NULL: unchanged), in one statement.
RECORD = (
    sql.SQL("""
    WITH outcome AS (
        SELECT * FROM unnest(%(ids)s::bigint[], %(codes)s::integer[], %(errors)s::varchar[],
                             %(durations)s::integer[], %(statuses)s::varchar[],
                             %(next_at)s::timestamptz[], %(delivered_at)s::timestamptz[])
            AS o(id, status_code, error, duration_ms, status, next_attempt_at, delivered_at)
    ), logged AS (
        INSERT INTO {attempt} (event_id, status_code, error, duration_ms, is_manual, created_at)
        SELECT id, status_code, error, duration_ms, %(manual)s, %(logged_at)s FROM outcome
    )
    UPDATE {event} e
       SET attempts = e.attempts + 1,
           last_status_code = o.status_code,
           status = COALESCE(o.status, e.status),
           next_attempt_at = COALESCE(o.next_attempt_at, e.next_attempt_at),
           delivered_at = COALESCE(o.delivered_at, e.delivered_at)
      FROM outcome o
     WHERE e.id = o.id
    """)
    .format(event=_EVENT, attempt=_ATTEMPT)
    .as_string()
)


# --- signed requests -----------------------------------------------------------------------------
_KEY = sql.Identifier(ApiKey._meta.db_table)
_NONCE = sql.Identifier(ApiNonce._meta.db_table)

# After the signature checked out (with the key's secret from this process's short cache): the
# nonce spent — only while the key is active and its site approved, so a refused request
# writes nothing — and what may have changed since the cache was filled, read fresh: whether
# the key is revoked, its scopes, the site's state, allowlist, limits and contact. One
# statement, one round trip, committed on its own (a replay is refused on every host).
SPEND_NONCE = (
    sql.SQL("""
    WITH spent AS (
        INSERT INTO {nonce} (key_id, nonce, expires_at)
        SELECT k.key_id, %(nonce)s, %(expires_at)s
          FROM {key} k JOIN {site} s ON s.id = k.site_id
         WHERE k.id = %(key_pk)s AND k.is_active AND s.status = 'active'
        ON CONFLICT (key_id, nonce) DO NOTHING
        RETURNING 1
    )
    SELECT k.is_active, k.scopes, s.status, s.ip_allowlist, s.name, s.distributor_id, s.credit_limit,
           s.order_limit, s.contact_email, s.requests_per_minute, EXISTS (SELECT 1 FROM spent)
      FROM {key} k JOIN {site} s ON s.id = k.site_id
     WHERE k.id = %(key_pk)s
    """)
    .format(nonce=_NONCE, key=_KEY, site=_SITE)
    .as_string()
)
