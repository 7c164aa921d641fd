from . import products, suppliers, vault  # noqa: F401
