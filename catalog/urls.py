from django.urls import path

from . import views

app_name = "catalog"
urlpatterns = [
    path("", views.shop_home, name="shop-home"),
    path("products/<int:pk>/", views.product_detail, name="product-detail"),
]
