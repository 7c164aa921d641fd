"""The distributor tree's lock: every tree write (join, move, remove) and the sales rollup's
repair take it exclusively; a payment's sale takes it shared (``sales``)."""

from django.db import connection

from .. import sql as distribution_sql


def lock_tree() -> None:
    """Queue behind every other tree write until this transaction ends."""
    if not connection.in_atomic_block:
        raise RuntimeError("lock_tree() must run inside transaction.atomic()")
    with connection.cursor() as cursor:
        cursor.execute(distribution_sql.TREE_LOCK)
