"""Test factories for kamen: staff accounts in their role groups."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

PASSWORD = "kamen-test-pass"


class StaffFactory(factory.django.DjangoModelFactory):
    """A merchant staff member; ``roles=[OWNER, …]`` puts them in those role groups (made by
    kamen's migrations), as the console's user page does."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    is_staff = True
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def roles(user, create, extracted, **kwargs):
        if create and extracted:
            user.groups.add(*Group.objects.filter(name__in=extracted))
