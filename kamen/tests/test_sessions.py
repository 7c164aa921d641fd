"""Sessions written in one statement (kamen.sessions): what Django's database sessions promise
— a new session never takes over another's key, a save of a session deleted meanwhile fails
loudly — still holds, inside a caller's transaction too."""

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from kamen.sessions import SessionStore


@pytest.mark.django_db(transaction=True)
def test_a_new_session_is_one_insert_and_reads_back():
    session = SessionStore()
    session["orders.placed"] = ["K1"]

    with CaptureQueriesContext(connection) as queries:
        session.save()

    assert [query["sql"].split()[0] for query in queries.captured_queries] == ["INSERT"]
    assert SessionStore(session_key=session.session_key)["orders.placed"] == ["K1"]


@pytest.mark.django_db(transaction=True)
def test_saving_again_is_one_update():
    session = SessionStore()
    session["orders.placed"] = ["K1"]
    session.save()
    session["orders.placed"] = ["K1", "K2"]

    with CaptureQueriesContext(connection) as queries:
        session.save()

    assert [query["sql"].split()[0] for query in queries.captured_queries] == ["UPDATE"]
    assert SessionStore(session_key=session.session_key)["orders.placed"] == ["K1", "K2"]


def _taken_key_then_fresh(monkeypatch, taken: str) -> None:
    keys = iter([taken, "f" * 32])
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: next(keys))


@pytest.mark.django_db(transaction=True)
def test_a_key_already_taken_is_never_reused(monkeypatch):
    owner = SessionStore()
    owner["orders.placed"] = ["K-OWNER"]
    owner.save()
    _taken_key_then_fresh(monkeypatch, owner.session_key)

    newcomer = SessionStore()
    newcomer["orders.placed"] = ["K-NEW"]
    newcomer.save()

    assert newcomer.session_key == "f" * 32
    assert SessionStore(session_key=owner.session_key)["orders.placed"] == ["K-OWNER"]


@pytest.mark.django_db
def test_inside_a_transaction_a_taken_key_leaves_the_transaction_usable(monkeypatch):
    owner = SessionStore()
    owner.save()
    _taken_key_then_fresh(monkeypatch, owner.session_key)

    with transaction.atomic():
        newcomer = SessionStore()
        newcomer["x"] = 1
        newcomer.save()
        assert Session.objects.count() == 2  # the transaction still answers


@pytest.mark.django_db(transaction=True)
def test_saving_a_session_deleted_meanwhile_is_an_error_not_a_new_session():
    session = SessionStore()
    session["x"] = 1
    session.save()
    Session.objects.filter(session_key=session.session_key).delete()
    session["x"] = 2

    with pytest.raises(UpdateError):
        session.save()
    assert not Session.objects.exists()
