"""The distributor tree's lock: every tree write (join, move, remove) and the sales rollup's
repair take it exclusively; a payment's sale takes it shared (``sales``)."""

from django.db import connection

TREE_LOCK_SQL = (
    "SELECT pg_advisory_xact_lock(hashtext('distribution.distributor.tree'))"
)


def lock_tree() -> None:
    """Queue behind every other tree write until this transaction ends."""
    if not connection.in_atomic_block:
        raise RuntimeError("lock_tree() must run inside transaction.atomic()")
    with connection.cursor() as cursor:
        cursor.execute(TREE_LOCK_SQL)
