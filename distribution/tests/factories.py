
import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from catalog.tests.factories import CategoryFactory, ProductFactory
from distribution.models import AdmissionMode, Distributor, DistributorStatus, Grade

__all__ = ["CategoryFactory", "DistributorFactory", "GradeFactory", "ProductFactory", "UserFactory"]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"agent{n}")
    display_name = factory.Sequence(lambda n: f"代理{n}")
    phone = factory.Sequence(lambda n: f"138{n:08d}")
    password = factory.django.Password("kamen-test-pass")


class GradeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Grade

    name = factory.Sequence(lambda n: f"等级{n}")
    rank = factory.Sequence(lambda n: 10 + n)
    wholesale_discount_bp = 8000
    admission_mode = AdmissionMode.AUTOMATIC
    may_recruit = True
    may_open_sub_store = True


class DistributorFactory(factory.django.DjangoModelFactory):
    """A root distributor by default (tests pass ``parent`` for a child). Rows made here go
    through mptt's own insert; tests of the locking path use the services."""

    class Meta:
        model = Distributor

    user = factory.SubFactory(UserFactory)
    grade = factory.SubFactory(GradeFactory)
    invite_code = factory.Sequence(lambda n: f"INV{n:05d}")
    status = DistributorStatus.ACTIVE
    joined_at = factory.LazyFunction(timezone.now)
