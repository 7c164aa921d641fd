"""The riskcontrol app's raw SQL: the checkout check's one statement (blacklist hit, the buyer's
and the chain's figures, the signal's insert, the distributor's day total) and the corrections
after it, composed with psycopg's ``sql`` module (identifiers and literals quoted by the driver).

Why raw SQL: the ORM spent several times longer building the check's aggregate than
PostgreSQL spent running it, and the whole check is one round trip this way; the driver
prepares each of its handful of shapes once per connection (``kamen.db``).

Kinds and verdicts are literals, not parameters: the generic plan of a prepared statement can
then still match the partial indexes (a parameter could be any kind). Values are ``%s``
placeholders, sent apart from the text, in the order the builder returns them.
"""

from psycopg import sql

from riskcontrol.models import BlacklistEntry, BlacklistKind, DistributorDayTotal, RiskSignal, SignalKind, Verdict

SIGNAL = sql.Identifier(RiskSignal._meta.db_table)
BLACKLIST = sql.Identifier(BlacklistEntry._meta.db_table)
DAY_TOTAL = sql.Identifier(DistributorDayTotal._meta.db_table)
CHECKOUT = sql.Literal(SignalKind.CHECKOUT.value)
BLOCKED = sql.Literal(Verdict.BLOCK.value)

# The chain's signals that can betray a self-referral (``risk_signal_chain_idx``).
CHAIN_KINDS = sql.SQL(", ").join(
    sql.Literal(kind.value) for kind in (SignalKind.SIGNUP, SignalKind.LOGIN, SignalKind.PAYOUT_ACCOUNT)
)


def text(statement: sql.Composable) -> str:
    """The statement as the text the driver sends (and prepares under)."""
    return statement.as_string()


# --- the blacklist hit -------------------------------------------------------------------------
ACTIVE = sql.SQL("(expires_at IS NULL OR expires_at > now())")
# One kind's value (``blacklist_value_idx``). Parameters: kind, value index.
BLACKLIST_VALUE_HIT = sql.SQL(
    "(SELECT id FROM {table} WHERE kind = %s AND value_index = %s AND {active} LIMIT 1)"
).format(table=BLACKLIST, active=ACTIVE)
# The IP in a listed network (the GiST index on the networks). Parameter: the IP.
BLACKLIST_IP_HIT = sql.SQL(
    "(SELECT id FROM {table} WHERE kind = {ip} AND set_masklen(network, prefix_length) >>= %s::inet"
    " AND {active} LIMIT 1)"
).format(table=BLACKLIST, ip=sql.Literal(BlacklistKind.IP.value), active=ACTIVE)
NO_BLACKLIST_HIT = sql.SQL("NULL::bigint")


def first_hit(hits: list[sql.Composable]) -> sql.Composable:
    """The first of these look-ups that finds an entry, each still a look-up of its own (one OR
    over all made PostgreSQL read the table)."""
    if not hits:
        return NO_BLACKLIST_HIT
    if len(hits) == 1:
        return hits[0]
    return sql.SQL("COALESCE({})").format(sql.SQL(", ").join(hits))


# --- the figures ------------------------------------------------------------------------------
NOT_BLOCKED = sql.SQL("verdict <> {blocked}").format(blocked=BLOCKED)
COUNTED = sql.SQL("kind = {checkout} AND {not_blocked}").format(checkout=CHECKOUT, not_blocked=NOT_BLOCKED)
# ``kind || ''``: no index on kind may serve a buyer's arm (planned on a small table, the generic
# plan chose (kind, created_at) and read every checkout of the day).
A_CHECKOUT = sql.SQL("(kind || '') = {checkout}").format(checkout=CHECKOUT)
UNBLOCKED_COUNT = sql.SQL("count(*) FILTER (WHERE {not_blocked})").format(not_blocked=NOT_BLOCKED)

# The buyer's arms. Parameters: the value, since.
IP_ARM = sql.SQL("{checkout} AND ip = %s::inet AND created_at >= %s").format(checkout=A_CHECKOUT)
DEVICE_ARM = sql.SQL("{checkout} AND device_id = %s AND created_at >= %s").format(checkout=A_CHECKOUT)
# Parameters: product, repeat since, day start (the aggregates); contact index, since (the arm).
REPEAT_COUNT = sql.SQL("count(*) FILTER (WHERE {not_blocked} AND product_id = %s AND created_at >= %s)").format(
    not_blocked=NOT_BLOCKED
)
BUYER_TODAY = sql.SQL("sum(amount) FILTER (WHERE {not_blocked} AND created_at >= %s)").format(not_blocked=NOT_BLOCKED)
CONTACT_ARM = sql.SQL("{checkout} AND contact_index = %s AND created_at >= %s").format(checkout=A_CHECKOUT)

# The chain's arm: a value the buyer shares with a signal of the chain. Parameter: the value.
SAME_IP = sql.SQL("ip = %s::inet")
SAME_DEVICE = sql.SQL("device_id = %s")
SAME_CONTACT = sql.SQL("contact_index = %s")
SAME_PAYMENT = sql.SQL("payment_account_index = %s")


def chain_arm(same: list[sql.Composable]) -> sql.Composed:
    """Parameters: the chain's ids, then those of ``same``."""
    return sql.SQL("kind IN ({kinds}) AND distributor_id = ANY(%s) AND ({same})").format(
        kinds=CHAIN_KINDS, same=sql.SQL(" OR ").join(same)
    )


def chain_match(same: sql.Composable) -> sql.Composed:
    """A chain member (the largest id) whose signal shares the value of ``same``."""
    return sql.SQL("max(distributor_id) FILTER (WHERE {same})").format(same=same)


# The docking site's recent API orders (``risk_signal_docking_idx``). Parameters: site, since.
DOCKING_COUNT = sql.SQL(
    "(SELECT count(*) FROM {table} WHERE docking_site_id = %s AND created_at >= %s AND {counted})"
).format(table=SIGNAL, counted=COUNTED)


def named(expression: sql.Composable, name: str) -> sql.Composed:
    return sql.SQL("{} AS {}").format(expression, sql.Identifier(name))


def arm(aggregates: list[sql.Composable], where: sql.Composable, number: int) -> sql.Composed:
    """One-row aggregate over the signals, a source of the figures' cross join."""
    return sql.SQL("(SELECT {aggregates} FROM {table} WHERE {where}) AS {name}").format(
        aggregates=sql.SQL(", ").join(aggregates), table=SIGNAL, where=where, name=sql.Identifier(f"arm{number}")
    )


def figures(columns: list[sql.Composable], arms: list[sql.Composable]) -> sql.Composed:
    statement = sql.SQL("SELECT {}").format(sql.SQL(", ").join(columns))
    if not arms:
        return statement
    return sql.SQL("{} FROM {}").format(statement, sql.SQL(" CROSS JOIN ").join(arms))


# --- the writes riding along -------------------------------------------------------------------
def new_signal(columns: tuple[str, ...]) -> sql.Composed:
    """The CTE inserting the check's signal. Parameters: the values of ``columns``."""
    return sql.SQL("new_signal AS (INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id)").format(
        table=SIGNAL,
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )


NEW_SIGNAL_ID = sql.SQL("(SELECT id FROM new_signal)")
# Parameters: distributor, day, amount.
DAY_TOTAL_ADD = sql.SQL(
    "day_total AS (INSERT INTO {table} (distributor_id, day, total) VALUES (%s, %s, %s)"
    " ON CONFLICT (distributor_id, day) DO UPDATE SET total = {table}.total + EXCLUDED.total RETURNING total)"
).format(table=DAY_TOTAL)
DAY_TOTAL_NOW = sql.SQL("(SELECT total FROM day_total)")
# Outside a transaction: this statement does not wait for the WAL flush.
NO_FLUSH = sql.SQL("no_flush AS (SELECT set_config('synchronous_commit', 'off', true))")


def with_writes(ctes: list[sql.Composable], outer: list[sql.Composable], sources: list[sql.Composable]) -> sql.Composed:
    return sql.SQL("WITH {ctes} SELECT {outer} FROM {sources}").format(
        ctes=sql.SQL(", ").join(ctes), outer=sql.SQL(", ").join(outer), sources=sql.SQL(", ").join(sources)
    )


def figures_cte(statement: sql.Composable) -> sql.Composed:
    return sql.SQL("figures AS ({})").format(statement)


ALL_FIGURES = sql.SQL("figures.*")
FIGURES = sql.SQL("figures")
NO_FLUSH_SOURCE = sql.SQL("no_flush")


# --- after the check ---------------------------------------------------------------------------
# The verdict of a signal the rules fired on. Parameters: verdict, explanation, id.
SET_VERDICT = text(sql.SQL("UPDATE {table} SET verdict = %s, explanation = %s WHERE id = %s").format(table=SIGNAL))
# A blocked checkout's amount out of the distributor's day total. Parameters: amount, distributor, day.
TAKE_BACK_DAY_TOTAL = text(
    sql.SQL("UPDATE {table} SET total = total - %s WHERE distributor_id = %s AND day = %s").format(table=DAY_TOTAL)
)
