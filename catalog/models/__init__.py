from .products import (
    BundleItem,
    Category,
    CustomFieldType,
    DeliveryOrder,
    Product,
    ProductCustomField,
    ProductImage,
    ProductType,
    RechargeTargetRule,
)
from .suppliers import Supplier, SupplierAdapter, SupplierChannel, SupplierPriceChange
from .vault import (
    CardKey,
    CardKeyBatch,
    CardKeyImport,
    CardKeyStatus,
    ImportStatus,
    ReusableCardKey,
    StockAlert,
)

__all__ = [
    "BundleItem",
    "CardKey",
    "CardKeyBatch",
    "CardKeyImport",
    "CardKeyStatus",
    "Category",
    "CustomFieldType",
    "DeliveryOrder",
    "ImportStatus",
    "Product",
    "ProductCustomField",
    "ProductImage",
    "ProductType",
    "RechargeTargetRule",
    "ReusableCardKey",
    "StockAlert",
    "Supplier",
    "SupplierAdapter",
    "SupplierChannel",
    "SupplierPriceChange",
]
