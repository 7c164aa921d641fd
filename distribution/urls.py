from django.urls import path

from . import views
from .docking import receiver

app_name = "distribution"
urlpatterns = [
    # An upstream Kamen's webhooks to us, one URL per upstream supplier (signed; docs/adr/0019).
    path("hooks/upstream/<int:supplier_pk>/", receiver.upstream_webhook, name="upstream-webhook"),
    path("agent/login/", views.AgentLoginView.as_view(), name="agent-login"),
    path("agent/logout/", views.AgentLogoutView.as_view(), name="agent-logout"),
    path("agent/", views.dashboard, name="agent-dashboard"),
    path("agent/team/", views.team, name="agent-team"),
    path("agent/team/<int:pk>/", views.team, name="agent-team-member"),
    path("agent/orders/", views.orders, name="agent-orders"),
    path("agent/orders/<str:order_no>/", views.order_detail, name="agent-order-detail"),
    path("agent/store/", views.store, name="agent-store"),
    path("agent/links/", views.links, name="agent-links"),
    path("agent/posters/", views.posters, name="agent-posters"),
    path(
        "agent/posters/<int:product_pk>.png",
        views.poster_image,
        name="agent-poster-image",
    ),
    path("agent/copy/", views.copy, name="agent-copy"),
    path("agent/appeal/", views.appeal, name="agent-appeal"),
    path("agent/join/<str:code>/", views.join, name="join"),
    path("r/<str:code>/", views.referral, name="referral"),
    path("r/<str:code>/p/<int:product_pk>/", views.referral, name="referral-product"),
    path("s/<slug:slug>/", views.sub_store, name="sub-store"),
    path(
        "s/<slug:slug>/products/<int:product_pk>/",
        views.sub_store_product,
        name="sub-store-product",
    ),
]
