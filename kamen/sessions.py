"""Database sessions that cost one statement to create or save instead of four and three.

Django's database store looks for a free key (a SELECT) before inserting, and wraps each write
in its own transaction (BEGIN, the statement, COMMIT). One INSERT or UPDATE in autocommit is
already all-or-nothing, and the session table's primary key refuses a key already taken: the
INSERT itself is the check, and ``create`` draws another key on ``CreateError``, as Django's
does. Inside a caller's transaction the statement runs in a savepoint, so a refused INSERT
does not break that transaction. Everything else — the table, the cookie, expiry, cycling the
key at log-in, flushing at log-out — is Django's database session (docs/adr/0014).
"""

import contextlib

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.utils.crypto import get_random_string


class SessionStore(DatabaseSessionStore):
    def _get_new_session_key(self) -> str:
        # 32 characters of 36: the INSERT's primary key refuses the one-in-10^49 repeat.
        return get_random_string(32, VALID_KEY_CHARS)

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        instance = self.create_model_instance(data)
        using = router.db_for_write(self.model, instance=instance)
        in_transaction = connections[using].in_atomic_block
        try:
            with transaction.atomic(using=using) if in_transaction else contextlib.nullcontext():
                instance.save(force_insert=must_create, force_update=not must_create, using=using)
        except IntegrityError:
            if must_create:
                raise CreateError from None
            raise
        except DatabaseError:
            if not must_create:
                raise UpdateError from None
            raise
