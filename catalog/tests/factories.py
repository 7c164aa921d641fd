"""Test factories for the catalog: categories, products, card-key batches and keys.

Rows made here skip the services (no encryption, no stock counters): use them where the test
is about something else — a constraint, a page, a plan — and the services where the test is
about importing or selling keys (``orders.tests.factories.add_keys`` encrypts real secrets).
"""

from decimal import Decimal

import factory

from catalog.models import CardKey, CardKeyBatch, Category, Product, ProductType


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"分类{n}")
    slug = factory.Sequence(lambda n: f"cat-{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    """An on-shelf card-key product at ¥100 (cost ¥60, resale up to ¥120)."""

    class Meta:
        model = Product

    category = factory.SubFactory(CategoryFactory)
    name = factory.Sequence(lambda n: f"Steam 充值卡 {n}")
    product_type = ProductType.CARD_KEY
    retail_price = Decimal("100.00")
    cost_price = Decimal("60.00")
    max_resale_price = Decimal("120.00")
    is_on_shelf = True


class CardKeyBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CardKeyBatch

    product = factory.SubFactory(ProductFactory)


class CardKeyFactory(factory.django.DjangoModelFactory):
    """An available key in a batch of its own product (the composite foreign key's rule); its
    secret is a placeholder, not a ciphertext the vault could open."""

    class Meta:
        model = CardKey

    product = factory.SubFactory(ProductFactory)
    batch = factory.SubFactory(CardKeyBatchFactory, product=factory.SelfAttribute("..product"))
    secret_ciphertext = b"x"
    key_id = "k"
    fingerprint = factory.Sequence(lambda n: f"{n:064x}")
