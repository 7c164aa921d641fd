"""Concurrent joins and moves queue on the advisory lock and leave a valid tree."""

import threading

import pytest
from django.db import connection

from distribution import services
from distribution.models import AdmissionMode, Distributor

from .factories import DistributorFactory, GradeFactory, UserFactory


@pytest.mark.django_db(transaction=True)
def test_concurrent_joins_keep_the_tree_valid():
    GradeFactory(
        name="推广员", rank=1, is_default=True, admission_mode=AdmissionMode.AUTOMATIC
    )
    grade = GradeFactory(rank=5)
    roots = [DistributorFactory(grade=grade) for _ in range(3)]
    users = [UserFactory() for _ in range(24)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            barrier.wait()
            for index in range(offset, len(users), 8):
                inviter = roots[index % 3]
                services.join_network(user=users[index], code=inviter.invite_code)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Distributor.objects.count() == 27
    assert services.tree_problems() == []
    for root in roots:
        root = Distributor.objects.get(pk=root.pk)
        assert (root.rght - root.lft - 1) // 2 == 8


@pytest.mark.django_db(transaction=True)
def test_one_user_joining_twice_at_once_gets_one_membership():
    GradeFactory(
        name="推广员", rank=1, is_default=True, admission_mode=AdmissionMode.AUTOMATIC
    )
    inviter = DistributorFactory(grade=GradeFactory(rank=5))
    user = UserFactory()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def worker() -> None:
        try:
            barrier.wait()
            services.join_network(user=user, code=inviter.invite_code)
            outcomes.append("joined")
        except Exception as error:  # noqa: BLE001
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["ValidationError"] * 3 + ["joined"]
    assert Distributor.objects.filter(user=user).count() == 1
    assert services.tree_problems() == []
