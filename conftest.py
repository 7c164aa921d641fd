import pytest


@pytest.fixture
def staff_user(db, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="operator", password="kamen-test-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    return user


@pytest.fixture
def owner_user(db, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="owner", password="kamen-test-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="owner"))
    return user
