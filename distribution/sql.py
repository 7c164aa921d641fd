"""The distribution app's raw SQL: the tree lock, the upline walk, the referral attribution and
the sales rollup, composed with psycopg's ``sql`` module (identifiers and literals quoted by the
driver).

Why raw SQL: the upline is a recursive walk of the parent column (one row per level, where the
nested-set form scans every earlier node), and the attribution and a payment's sale are one
statement each on the checkout and payment paths, prepared once per connection by the driver
(``kamen.db``). Values are ``%s`` / ``%(name)s`` placeholders, sent apart from the text.

Orders are read by their table name: this app sits below orders and never imports it.
"""

import functools

from psycopg import sql

from distribution.models import (
    MAX_COMMISSION_DEPTH,
    DistributionSettings,
    Distributor,
    DistributorDailySales,
    DistributorStatus,
    DistributorTeamTotals,
    ReferralLink,
    SubStore,
)

DISTRIBUTOR = sql.Identifier(Distributor._meta.db_table)
DAILY = sql.Identifier(DistributorDailySales._meta.db_table)
TOTALS = sql.Identifier(DistributorTeamTotals._meta.db_table)
LINK = sql.Identifier(ReferralLink._meta.db_table)
ORDERS = sql.Identifier("orders_order")

# The key of the distributor tree's advisory lock: taken exclusively by every tree write and
# the rollup's repair, shared by a payment's sale.
_TREE_LOCK_KEY = sql.Literal("distribution.distributor.tree")


def _text(statement: sql.Composable) -> str:
    """The statement as the text the driver sends (and prepares under)."""
    return statement.as_string()


TREE_LOCK = _text(sql.SQL("SELECT pg_advisory_xact_lock(hashtext({key}))").format(key=_TREE_LOCK_KEY))
TREE_LOCK_SHARED = _text(sql.SQL("SELECT pg_advisory_xact_lock_shared(hashtext({key}))").format(key=_TREE_LOCK_KEY))
# The shared lock and whether distributor ``%s`` exists, in one statement.
TREE_LOCK_SHARED_AND_EXISTS = _text(
    sql.SQL("{lock}, EXISTS (SELECT 1 FROM {distributor} WHERE id = %s)").format(
        lock=sql.SQL(TREE_LOCK_SHARED), distributor=DISTRIBUTOR
    )
)

# The ancestors of distributor ``%s``, nearest first, at most ``%s`` of them: (id, parent_id,
# user_id, grade_id, level). The walk follows the parent column (the source of truth) by
# primary key: one row per level (~0.3 ms for 48 levels on the 100k bench tree); the
# nested-set form (lft < x < rght) has to scan every earlier node of the tree, ~45 ms there.
UPLINE = _text(
    sql.SQL("""
    WITH RECURSIVE upline(id, parent_id, user_id, grade_id, level, steps) AS (
        SELECT id, parent_id, user_id, grade_id, level, 0
        FROM {distributor} WHERE id = %s
        UNION ALL
        SELECT node.id, node.parent_id, node.user_id, node.grade_id, node.level, upline.steps + 1
        FROM {distributor} AS node JOIN upline ON node.id = upline.parent_id
        WHERE upline.steps < %s
    )
    SELECT id, parent_id, user_id, grade_id, level FROM upline WHERE steps > 0 ORDER BY steps
""").format(distributor=DISTRIBUTOR)
)


# --- attribution ---------------------------------------------------------------------------
# A referral code ``%s``: the link with its distributor, the merchant's depth and the upline
# the depth can pay (see ``services.attribution``).
ATTRIBUTION = _text(
    sql.SQL("""
    WITH RECURSIVE link AS (
        SELECT l.code, d.id AS distributor_id, d.grade_id, d.parent_id,
               EXISTS (SELECT 1 FROM {store} s WHERE s.distributor_id = d.id) AS has_store,
               (SELECT s.id FROM {store} s WHERE s.distributor_id = d.id AND s.is_open)
                   AS open_store_id,
               (SELECT least(greatest(commission_depth, 1), {max_depth})
                FROM {settings} WHERE id = 1) AS depth
        FROM {link} l JOIN {distributor} d ON d.id = l.distributor_id
        WHERE l.code = %s AND l.is_active AND d.status = {active}
    ), upline(id, parent_id, grade_id, steps) AS (
        SELECT d.id, d.parent_id, d.grade_id, 1
        FROM link JOIN {distributor} d ON d.id = link.parent_id
        WHERE link.depth >= 2
        UNION ALL
        SELECT d.id, d.parent_id, d.grade_id, upline.steps + 1
        FROM upline JOIN {distributor} d ON d.id = upline.parent_id
        WHERE upline.steps < (SELECT depth FROM link) - 1
    )
    SELECT link.code, link.open_store_id, link.distributor_id, link.grade_id, link.has_store, link.depth,
           ARRAY(SELECT id FROM upline ORDER BY steps), ARRAY(SELECT grade_id FROM upline ORDER BY steps)
    FROM link
""").format(
        store=sql.Identifier(SubStore._meta.db_table),
        settings=sql.Identifier(DistributionSettings._meta.db_table),
        link=LINK,
        distributor=DISTRIBUTOR,
        max_depth=sql.Literal(MAX_COMMISSION_DEPTH),
        active=sql.Literal(DistributorStatus.ACTIVE.value),
    )
)

COUNT_REFERRAL_ORDER = _text(sql.SQL("UPDATE {link} SET orders = orders + 1 WHERE code = %s").format(link=LINK))


@functools.cache
def count_referral_order_cte(only_with: str) -> str:
    """The CTE ``counted``: the link ``%(link)s`` counts one more order when the caller's CTE
    ``only_with`` has a row."""
    return _text(
        sql.SQL("""counted AS (
            UPDATE {link} SET orders = orders + 1
            WHERE code = %(link)s AND EXISTS (SELECT 1 FROM {only_with})
        )""").format(link=LINK, only_with=sql.Identifier(only_with))
    )


# --- the sales rollup ----------------------------------------------------------------------
# The seller ``%(seller)s`` and everyone above it, by the parent column.
_UPLINE_CTE = sql.SQL("""
    upline(id, parent_id, steps) AS (
        SELECT id, parent_id, 0 FROM {distributor} WHERE id = %(seller)s
        UNION ALL
        SELECT node.id, node.parent_id, upline.steps + 1
        FROM {distributor} AS node JOIN upline ON node.id = upline.parent_id
        WHERE upline.steps < 100000
    )
""").format(distributor=DISTRIBUTOR)
# Rows are inserted, or locked and updated, in primary-key order: two payments in the same
# upline wait for each other instead of deadlocking.
_ADD_TO_TEAM_TOTALS = sql.SQL("""
    INSERT INTO {totals} AS totals (distributor_id, orders, amount)
    SELECT id, %(delta_orders)s::integer, %(delta_amount)s::numeric FROM upline ORDER BY id
    ON CONFLICT (distributor_id) DO UPDATE
    SET orders = totals.orders + EXCLUDED.orders, amount = totals.amount + EXCLUDED.amount
""").format(totals=TOTALS)

# A sale added to the seller's day ``%(day)s`` and to the team totals of its upline.
ADD_SALE = _text(
    sql.SQL("""
    WITH RECURSIVE {upline},
    daily AS (
        INSERT INTO {daily} AS daily (distributor_id, day, orders, amount)
        SELECT id, %(day)s::date, %(delta_orders)s::integer, %(delta_amount)s::numeric FROM upline WHERE steps = 0
        ON CONFLICT (distributor_id, day) DO UPDATE
        SET orders = daily.orders + EXCLUDED.orders, amount = daily.amount + EXCLUDED.amount
    )
    {add_to_totals}
""").format(upline=_UPLINE_CTE, daily=DAILY, add_to_totals=_ADD_TO_TEAM_TOTALS)
)

# A recounted day: the day's row ``%(row)s`` set to (``%(orders)s``, ``%(amount)s``) and the
# change added to the team totals of the seller's upline.
SET_DAY_AND_ADD_TO_TEAM_TOTALS = _text(
    sql.SQL("""
    WITH RECURSIVE {upline},
    daily AS (
        UPDATE {daily} SET orders = %(orders)s, amount = %(amount)s
        WHERE id = %(row)s
    )
    {add_to_totals}
""").format(upline=_UPLINE_CTE, daily=DAILY, add_to_totals=_ADD_TO_TEAM_TOTALS)
)

# The day's row of (``%s``, ``%s``), locked or made; returns (id, orders, amount).
LOCK_DAY = _text(
    sql.SQL("""
    INSERT INTO {daily} AS daily (distributor_id, day, orders, amount)
    VALUES (%s, %s, 0, 0)
    ON CONFLICT (distributor_id, day) DO UPDATE SET orders = daily.orders
    RETURNING id, orders, amount
""").format(daily=DAILY)
)

# Distributor ``%s``'s own sales between ``%s`` and ``%s`` in statuses ``%s``: (count, amount).
COUNT_DAY = _text(
    sql.SQL("""
    SELECT count(*), coalesce(sum(paid_amount - refunded_amount), 0)
    FROM {orders}
    WHERE distributor_id = %s AND paid_at >= %s AND paid_at < %s
      AND status = ANY(%s)
""").format(orders=ORDERS)
)

# (orders, amount) added to the team totals of the ids ``%s``: rows made, then locked in
# primary-key order, then updated.
MAKE_TEAM_TOTALS = _text(
    sql.SQL("""
    INSERT INTO {totals} (distributor_id, orders, amount)
    SELECT id, 0, 0 FROM unnest(%s::bigint[]) AS id ORDER BY id
    ON CONFLICT (distributor_id) DO NOTHING
""").format(totals=TOTALS)
)
LOCK_TEAM_TOTALS = _text(
    sql.SQL("""
    SELECT distributor_id FROM {totals}
    WHERE distributor_id = ANY(%s) ORDER BY distributor_id FOR UPDATE
""").format(totals=TOTALS)
)
ADD_TO_TEAM_TOTALS = _text(
    sql.SQL("""
    UPDATE {totals}
    SET orders = orders + %s, amount = amount + %s
    WHERE distributor_id = ANY(%s)
""").format(totals=TOTALS)
)

# The repair: both tables emptied and recomputed from the orders (time zone ``%s``, sold
# statuses ``%s``).
DELETE_DAILY = _text(sql.SQL("DELETE FROM {daily}").format(daily=DAILY))
DELETE_TOTALS = _text(sql.SQL("DELETE FROM {totals}").format(totals=TOTALS))
REBUILD_DAILY = _text(
    sql.SQL("""
    INSERT INTO {daily} (distributor_id, day, orders, amount)
    SELECT o.distributor_id, (o.paid_at AT TIME ZONE %s)::date, count(*),
           sum(o.paid_amount - o.refunded_amount)
    FROM {orders} AS o
    JOIN {distributor} AS d ON d.id = o.distributor_id
    WHERE o.paid_at IS NOT NULL AND o.status = ANY(%s)
    GROUP BY 1, 2
""").format(daily=DAILY, orders=ORDERS, distributor=DISTRIBUTOR)
)
# Every node's team total: each seller's own total carried up the parent column (the truth;
# a nested-set range join would scan every earlier node of the tree per seller).
REBUILD_TOTALS = _text(
    sql.SQL("""
    WITH RECURSIVE own AS (
        SELECT distributor_id, sum(orders) AS orders, sum(amount) AS amount
        FROM {daily} GROUP BY distributor_id
    ), walk(node, orders, amount) AS (
        SELECT distributor_id, orders, amount FROM own
        UNION ALL
        SELECT d.parent_id, walk.orders, walk.amount
        FROM walk JOIN {distributor} AS d ON d.id = walk.node
        WHERE d.parent_id IS NOT NULL
    )
    INSERT INTO {totals} (distributor_id, orders, amount)
    SELECT node, sum(orders), sum(amount) FROM walk GROUP BY node
""").format(daily=DAILY, distributor=DISTRIBUTOR, totals=TOTALS)
)


# --- docking: the webhook outbox's claim and record, a signed request's nonce ---------------------
# Each replaces a transaction of several ORM round trips (claim: lock, update, commit; record: a
# log row per try and an update per outcome; a request: the key read, then the nonce in its own
# transaction). Each is one statement, atomic on its own.
from distribution.docking.models import (  # noqa: E402 (the docking section's own tables)
    ApiKey,
    ApiNonce,
    DockingSite,
    WebhookAttempt,
    WebhookEvent,
)

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
