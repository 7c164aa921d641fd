"""The commissions app's raw SQL: journal postings with their balances, an order's accrual,
the split's inputs, a settlement chunk and the team sales, composed with psycopg's ``sql``
module (identifiers and literals quoted by the driver).

Why raw SQL: each is one statement where the ORM needs a round trip per row or per table
(posting many transactions, an order's commission rows with their accrual, every input of a
split), and the driver prepares the hot ones once per connection (``kamen.db``). Values are
``%s`` / ``%(name)s`` placeholders, sent apart from the text.

Orders are read by their table name: this app sits below orders and never imports it.
"""

import functools

from psycopg import sql

from catalog.models import CardKey, CardKeyBatch, Product, ReusableCardKey, SupplierRechargeAttempt
from commissions.models import (
    Account,
    AccountKind,
    Campaign,
    CapEvent,
    Commission,
    CommissionPolicy,
    CommissionRule,
    CommissionTier,
    JournalEntry,
    JournalTransaction,
    ProductBonus,
    WalletHold,
)
from distribution.models import DistributionSettings, Distributor, Grade

ACCOUNT = sql.Identifier(Account._meta.db_table)
COMMISSION = sql.Identifier(Commission._meta.db_table)
JOURNAL = sql.Identifier(JournalTransaction._meta.db_table)
ENTRY = sql.Identifier(JournalEntry._meta.db_table)
DISTRIBUTOR = sql.Identifier(Distributor._meta.db_table)
ORDERS = sql.Identifier("orders_order")


def _text(statement: sql.Composable) -> str:
    """The statement as the text the driver sends (and prepares under)."""
    return statement.as_string()


# --- postings ------------------------------------------------------------------------------
# The balances of what ``posted`` (a CTE returning account_id, side, amount) wrote. The locking
# CTE is read through a one-time filter (an InitPlan), so it has locked every account, in id
# order, before the UPDATE touches the first one.
_BALANCES = sql.SQL(""", deltas AS (
    SELECT account_id, SUM(CASE WHEN side = 'credit' THEN amount ELSE -amount END) AS delta
      FROM posted GROUP BY account_id
), locked AS (
    SELECT a.id FROM {account} a WHERE a.id IN (SELECT account_id FROM deltas)
     ORDER BY a.id FOR NO KEY UPDATE
), moved AS (
    UPDATE {account} a SET balance = a.balance + d.delta
      FROM deltas d
     WHERE a.id = d.account_id AND d.delta <> 0 AND (SELECT count(*) FROM locked) > 0
)""").format(account=ACCOUNT)

# Many journal transactions (one array element each) and their entries (one element per line,
# tied to its transaction by reference); a reference already posted is skipped. Returns
# (id, reference) of each transaction written.
POST = _text(
    sql.SQL("""
WITH tx AS (
    INSERT INTO {journal} (kind, reference, memo, order_id, actor_id, created_at)
    SELECT t.kind, t.reference, t.memo, t.order_id, t.actor_id, %(now)s
      FROM unnest(%(kinds)s::varchar[], %(references)s::varchar[], %(memos)s::varchar[],
                  %(orders)s::bigint[], %(actors)s::bigint[]) WITH ORDINALITY
           AS t(kind, reference, memo, order_id, actor_id, n)
     ORDER BY t.n
    ON CONFLICT (reference) DO NOTHING
    RETURNING id, reference
), posted AS (
    INSERT INTO {entry} (transaction_id, account_id, side, amount, commission_id, created_at)
    SELECT tx.id, l.account_id, l.side, l.amount, l.commission_id, %(now)s
      FROM unnest(%(line_references)s::varchar[], %(accounts)s::bigint[], %(sides)s::varchar[],
                  %(amounts)s::numeric[], %(commissions)s::bigint[]) WITH ORDINALITY
           AS l(reference, account_id, side, amount, commission_id, n)
      JOIN tx ON tx.reference = l.reference
     ORDER BY l.n
    RETURNING account_id, side, amount
){balances}
SELECT id, reference FROM tx
""").format(journal=JOURNAL, entry=ENTRY, balances=_BALANCES)
)

# An order's commission rows, its cap event (when ``cap_reason`` is not empty) and their accrual
# posting in one statement: the journal transaction debits ``revenue`` with the total and
# credits each row's account, then the balances move as in ``POST``.
ACCRUAL = _text(
    sql.SQL("""
WITH line AS (
    SELECT * FROM unnest(%(beneficiaries)s::bigint[], %(kinds)s::varchar[], %(levels)s::smallint[],
                         %(rules)s::bigint[], %(descriptions)s::varchar[], %(rates)s::integer[],
                         %(amounts)s::numeric[], %(accounts)s::bigint[]) WITH ORDINALITY
           AS l(beneficiary_id, kind, level, rule_id, description, rate_bp, amount, account_id, n)
), commission AS (
    INSERT INTO {commission} (order_id, beneficiary_id, kind, level, rule_id, rule_description,
                              rate_bp, base_amount, amount, reversed_amount, status, available_at,
                              created_at)
    SELECT %(order)s::bigint, beneficiary_id, kind, level, NULLIF(rule_id, 0), description,
           rate_bp, %(base)s::numeric, amount, 0, 'pending', %(available_at)s::timestamptz,
           %(now)s::timestamptz
      FROM line ORDER BY n
    RETURNING id, beneficiary_id, kind
), cap AS (
    INSERT INTO {cap_event} (order_id, computed_amount, capped_amount, reason, created_at)
    SELECT %(order)s::bigint, %(computed)s::numeric, %(total)s::numeric, %(cap_reason)s::varchar,
           %(now)s::timestamptz
     WHERE %(cap_reason)s::varchar <> ''
), tx AS (
    INSERT INTO {journal} (kind, reference, memo, order_id, actor_id, created_at)
    VALUES ('accrual', %(reference)s::varchar, %(memo)s::varchar, %(order)s::bigint, NULL,
            %(now)s::timestamptz)
    ON CONFLICT (reference) DO NOTHING
    RETURNING id
), posted AS (
    INSERT INTO {entry} (transaction_id, account_id, side, amount, commission_id, created_at)
    SELECT tx.id, e.account_id, e.side, e.amount, e.commission_id, %(now)s::timestamptz
      FROM tx, (
            SELECT %(revenue)s::bigint AS account_id, 'debit' AS side,
                   %(total)s::numeric AS amount, NULL::bigint AS commission_id, 0::bigint AS n
            UNION ALL
            SELECT line.account_id, 'credit', line.amount, commission.id, line.n
              FROM line JOIN commission USING (beneficiary_id, kind)
           ) AS e
     ORDER BY e.n
    RETURNING account_id, side, amount
){balances}
SELECT id, beneficiary_id, kind FROM commission
""").format(
        commission=COMMISSION,
        cap_event=sql.Identifier(CapEvent._meta.db_table),
        journal=JOURNAL,
        entry=ENTRY,
        balances=_BALANCES,
    )
)


# --- the split's inputs --------------------------------------------------------------------
GRADE_FIELDS = frozenset(
    {
        "id",
        "name",
        "wholesale_discount_bp",
        "commission_level1_bp",
        "commission_level2_bp",
        "commission_level3_bp",
    }
)
RULE_FIELDS = frozenset({"id", "grade_id", "product_id", "level", "mode", "rate_bp", "fixed_amount"})


@functools.cache
def attnames(model, wanted=None) -> tuple[str, ...]:
    """``model``'s concrete fields (those in ``wanted``, when given), in field order: the
    columns ``split_inputs`` reads and the names its rows are turned back into instances with."""
    return tuple(field.attname for field in model._meta.concrete_fields if wanted is None or field.attname in wanted)


def _columns(alias: str, names) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(alias, name) for name in names)


# Every input of an order's split in one row. Sets come back as one JSON text (parsed with
# Decimal for numbers: money stays exact). The chain is the whole snapshot chain; the plan cuts
# it at the depth read here.
@functools.cache
def split_inputs() -> str:
    return _text(
        sql.SQL("""
SELECT {policy_columns},
       (SELECT s.commission_depth FROM {settings} s WHERE s.id = 1),
       EXISTS (SELECT 1 FROM {commission} c WHERE c.order_id = %(order)s::bigint),
       (SELECT b.bonus_bp FROM {bonus} b
         WHERE b.product_id = %(product)s::bigint AND b.is_active LIMIT 1),
       (SELECT max(c.multiplier_bp) FROM {campaign} c
         WHERE c.is_active AND c.starts_at <= %(moment)s::timestamptz
           AND c.ends_at > %(moment)s::timestamptz
           AND (c.product_id IS NULL OR c.product_id = %(product)s::bigint)),
       json_build_array(
           (SELECT json_agg(json_build_array(d.id, d.grade_id, {grade_columns}))
              FROM {distributor} d JOIN {grade} g ON g.id = d.grade_id
             WHERE d.id = ANY (%(chain)s::bigint[])),
           (SELECT json_agg(json_build_array({rule_columns}))
              FROM {rule} r
             WHERE r.is_active AND r.level <= cardinality(%(chain)s::bigint[])
               AND (r.product_id = %(product)s::bigint OR r.product_id IS NULL)),
           (SELECT json_agg(json_build_array({tier_columns}) ORDER BY t.lower_bound)
              FROM {tier} t
             WHERE t.grade_id IS NULL
                OR t.grade_id = (SELECT d.grade_id FROM {distributor} d
                                  WHERE d.id = (%(chain)s::bigint[])[1])),
           (SELECT json_agg(json_build_array(a.id, a.distributor_id))
              FROM {account} a
             WHERE (a.kind = {pending} AND a.distributor_id = ANY (%(chain)s::bigint[]))
                OR (a.kind = {revenue} AND a.distributor_id IS NULL))
       )::text
  FROM (VALUES (1)) AS one (x) LEFT JOIN {policy} p ON p.id = 1
""").format(
            policy_columns=_columns("p", attnames(CommissionPolicy)),
            grade_columns=_columns("g", attnames(Grade, GRADE_FIELDS)),
            rule_columns=_columns("r", attnames(CommissionRule, RULE_FIELDS)),
            tier_columns=_columns("t", attnames(CommissionTier)),
            settings=sql.Identifier(DistributionSettings._meta.db_table),
            commission=COMMISSION,
            bonus=sql.Identifier(ProductBonus._meta.db_table),
            campaign=sql.Identifier(Campaign._meta.db_table),
            distributor=DISTRIBUTOR,
            grade=sql.Identifier(Grade._meta.db_table),
            rule=sql.Identifier(CommissionRule._meta.db_table),
            tier=sql.Identifier(CommissionTier._meta.db_table),
            account=ACCOUNT,
            policy=sql.Identifier(CommissionPolicy._meta.db_table),
            pending=sql.Literal(AccountKind.DISTRIBUTOR_PENDING.value),
            revenue=sql.Literal(AccountKind.MERCHANT_REVENUE.value),
        )
    )


# --- settlement ----------------------------------------------------------------------------
SETTLEMENT_LOCK = 0x4B414D454E5345  # pg_advisory_xact_lock key: one settlement at a time
LOCK_SETTLEMENT = "SELECT pg_advisory_xact_lock(%s)"

# One chunk in one statement: move the next due commissions to available and return what each
# beneficiary is owed. Runs hold SETTLEMENT_LOCK, so only one settles at a time; a refund that
# locked a commission first is waited for, and the status is checked again on the row it left.
SETTLE_CHUNK = _text(
    sql.SQL("""
WITH due AS (
    SELECT c.id FROM {commission} c
     WHERE c.status = 'pending' AND c.available_at <= %(now)s AND c.id > %(after)s
       AND NOT EXISTS (SELECT 1 FROM {hold} h WHERE h.is_active AND h.distributor_id = c.beneficiary_id)
     ORDER BY c.id
     LIMIT %(chunk)s
), moved AS (
    UPDATE {commission} c
       SET status = 'available', settled_at = %(now)s, settlement_run_id = %(run)s
     WHERE c.id = ANY(ARRAY(SELECT id FROM due)) AND c.status = 'pending'
    RETURNING c.id, c.beneficiary_id, GREATEST(c.amount - c.reversed_amount, 0) AS outstanding
)
SELECT m.beneficiary_id, m.outstanding, m.settled, d.last
  FROM (SELECT MAX(id) AS last FROM due) AS d
  LEFT JOIN (SELECT beneficiary_id, SUM(outstanding) AS outstanding, COUNT(*) AS settled
               FROM moved GROUP BY beneficiary_id) AS m ON TRUE
""").format(commission=COMMISSION, hold=sql.Identifier(WalletHold._meta.db_table))
)


# --- team bonus ----------------------------------------------------------------------------
# Each leader (status ``%s``) whose team's orders (statuses ``%s``, paid in [``%s``, ``%s``))
# reach ``%s``: (leader id, team sales), one grouped query over the nested-set intervals.
TEAM_SALES = _text(
    sql.SQL("""
    SELECT leader.id, SUM(o.paid_amount - o.refunded_amount) AS gmv
    FROM {distributor} AS leader
    JOIN {distributor} AS member
      ON member.tree_id = leader.tree_id
     AND member.lft BETWEEN leader.lft AND leader.rght
    JOIN {orders} AS o ON o.distributor_id = member.id
    WHERE leader.status = %s
      AND o.status = ANY(%s)
      AND o.paid_at >= %s AND o.paid_at < %s
    GROUP BY leader.id
    HAVING SUM(o.paid_amount - o.refunded_amount) >= %s
    ORDER BY leader.id
""").format(distributor=DISTRIBUTOR, orders=ORDERS)
)


# --- the order's books (``services.books``) -------------------------------------------------
# Two statements sent in one message (one round trip). The first makes the merchant's book
# accounts that do not exist yet (first use; in steady state it finds them all and writes
# nothing); the second, with its own snapshot, sees them — made by the first, or by another
# transaction whose insert it waited for — and posts. ``{lines}`` is a CTE body giving (kind,
# side, amount, n). The accounts are locked revenue first, then by id: every transaction that
# moves the merchant's books (payment, split, delivery, refund) holds revenue before any other
# of them, so two never wait for each other in a cycle, whatever the ids.
ENSURE_BOOK_ACCOUNTS = _text(
    sql.SQL("""
INSERT INTO {account} (kind, distributor_id, balance, created_at)
SELECT k.kind, NULL, 0, %(now)s::timestamptz FROM unnest(%(kinds)s::varchar[]) AS k(kind)
 WHERE NOT EXISTS (SELECT 1 FROM {account} a WHERE a.kind = k.kind AND a.distributor_id IS NULL)
ON CONFLICT DO NOTHING
""").format(account=ACCOUNT)
)


def _books(lines: sql.Composable) -> str:
    return _text(
        sql.SQL("""
WITH line AS ({lines}
), tx AS (
    INSERT INTO {journal} (kind, reference, memo, order_id, actor_id, created_at)
    SELECT %(kind)s::varchar, %(reference)s::varchar, %(memo)s::varchar, %(order)s::bigint, NULL,
           %(now)s::timestamptz
     WHERE EXISTS (SELECT 1 FROM line)
    ON CONFLICT (reference) DO NOTHING
    RETURNING id
), acc AS (
    SELECT a.id, a.kind FROM {account} a
     WHERE a.distributor_id IS NULL AND a.kind IN (SELECT kind FROM line)
), posted AS (
    INSERT INTO {entry} (transaction_id, account_id, side, amount, commission_id, created_at)
    SELECT tx.id, acc.id, line.side, line.amount, NULL, %(now)s::timestamptz
      FROM tx, line JOIN acc ON acc.kind = line.kind ORDER BY line.n
    RETURNING account_id, side, amount
), deltas AS (
    SELECT account_id, SUM(CASE WHEN side = 'credit' THEN amount ELSE -amount END) AS delta
      FROM posted GROUP BY account_id
), locked AS (
    SELECT a.id FROM {account} a WHERE a.id IN (SELECT account_id FROM deltas)
     ORDER BY a.kind <> 'merchant_revenue', a.id FOR NO KEY UPDATE
), moved AS (
    UPDATE {account} a SET balance = a.balance + d.delta
      FROM deltas d
     WHERE a.id = d.account_id AND d.delta <> 0 AND (SELECT count(*) FROM locked) > 0
)
SELECT (SELECT count(*) FROM tx)
""").format(lines=lines, account=ACCOUNT, journal=JOURNAL, entry=ENTRY)
    )


# One transaction of the given lines (``line_kinds``, ``sides``, ``amounts``, one element each).
BOOKS = _books(
    sql.SQL("""
    SELECT l.kind, l.side, l.amount, l.n
      FROM unnest(%(line_kinds)s::varchar[], %(sides)s::varchar[], %(amounts)s::numeric[])
           WITH ORDINALITY AS l(kind, side, amount, n)""")
)

# The cost of the goods of an order's parts (product, quantity): the batch cost of each card
# key sold to it (the product's cost price for a key whose batch has none), the supplier's
# charged price of a successful top-up (the product's cost price until one is known), the
# product's cost price for anything else (reusable keys, manual goods). The order's keys are
# read first, by ``sold_to`` alone (``card_key_sold_to_idx``, a handful of rows): matched by
# product inside, the planner may take the product's index instead and read every key it ever
# sold (seen without statistics: 2,000 rows for one order).
_COST = sql.SQL("""
WITH sold AS MATERIALIZED (
    SELECT k.product_id, b.unit_cost
      FROM {card_key} k JOIN {batch} b ON b.id = k.batch_id
     WHERE k.sold_to = %(order_no)s::varchar AND k.sold_to <> '' AND k.status = 'sold'
)
SELECT COALESCE(SUM(
    CASE
      WHEN p.product_type = 'card_key'
           AND NOT EXISTS (SELECT 1 FROM {reusable} r WHERE r.product_id = p.id) THEN
        (SELECT COALESCE(SUM(COALESCE(s.unit_cost, p.cost_price)), 0) FROM sold s WHERE s.product_id = p.id)
      WHEN p.product_type = 'direct_recharge' THEN
        COALESCE((SELECT SUM(a.cost) FROM {attempt} a
                   WHERE a.reference = %(order_no)s::varchar AND a.product_id = p.id
                     AND a.status = 'succeeded'),
                 p.cost_price * part.quantity)
      ELSE p.cost_price * part.quantity
    END), 0)
  FROM unnest(%(products)s::bigint[], %(quantities)s::integer[]) AS part(product_id, quantity)
  JOIN {product} p ON p.id = part.product_id
""").format(
    reusable=sql.Identifier(ReusableCardKey._meta.db_table),
    card_key=sql.Identifier(CardKey._meta.db_table),
    batch=sql.Identifier(CardKeyBatch._meta.db_table),
    attempt=sql.Identifier(SupplierRechargeAttempt._meta.db_table),
    product=sql.Identifier(Product._meta.db_table),
)

# The order's merchant lines so far, by (transaction kind, account kind), and — when
# ``with_cost`` — one more row with the cost of the goods of its parts.
BOOKED_LINES = _text(
    sql.SQL("""
SELECT t.kind, a.kind, SUM(CASE WHEN e.side = 'credit' THEN e.amount ELSE -e.amount END), NULL::numeric
  FROM {journal} t JOIN {entry} e ON e.transaction_id = t.id JOIN {account} a ON a.id = e.account_id
 WHERE t.order_id = %(order)s::bigint AND a.distributor_id IS NULL
 GROUP BY t.kind, a.kind
UNION ALL
SELECT NULL, NULL, NULL, ({cost}) WHERE %(with_cost)s::boolean
""").format(journal=JOURNAL, entry=ENTRY, account=ACCOUNT, cost=_COST)
)

# The delivery's transaction: revenue → cost (the goods' cost), revenue → profit (what is left
# of the order's revenue), for an order with nothing refunded.
DELIVERY_BOOKS = _books(
    sql.SQL("""
    WITH c AS (SELECT ({cost})::numeric AS amount
    ), r AS (
        SELECT COALESCE(SUM(CASE WHEN e.side = 'credit' THEN e.amount ELSE -e.amount END), 0) AS amount
          FROM {journal} t JOIN {entry} e ON e.transaction_id = t.id JOIN {account} a ON a.id = e.account_id
         WHERE t.order_id = %(order)s::bigint AND a.kind = 'merchant_revenue' AND a.distributor_id IS NULL
    ), p AS (SELECT r.amount - c.amount AS amount FROM r, c)
    SELECT l.kind::varchar AS kind, l.side::varchar AS side, l.amount, l.n FROM (
        SELECT 'supplier_cost' AS kind, 'credit' AS side, c.amount, 1 AS n FROM c
        UNION ALL SELECT 'merchant_revenue', 'debit', c.amount, 2 FROM c
        UNION ALL SELECT 'merchant_profit', CASE WHEN p.amount >= 0 THEN 'credit' ELSE 'debit' END,
                         abs(p.amount), 3 FROM p
        UNION ALL SELECT 'merchant_revenue', CASE WHEN p.amount >= 0 THEN 'debit' ELSE 'credit' END,
                         abs(p.amount), 4 FROM p
    ) AS l WHERE l.amount > 0""").format(cost=_COST, journal=JOURNAL, entry=ENTRY, account=ACCOUNT)
)
