from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from . import media, views

handler500 = "kamen.resilience.server_error"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("console/", include("catalog.console_urls")),
    path("sandbox/supplier/", include("catalog.sandbox_urls")),
    path("", include("orders.urls")),
    path("", include("catalog.urls")),
    path("", include("orders.urls_postsale")),
]

if media.serves_media():  # the embedded default has no web server in front (kamen/media.py)
    urlpatterns += [path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", media.media, name="media")]

urlpatterns += [path("api/", include("orders.api.urls"))]  # the open API (docs/adr/0019)
urlpatterns += [path("", include("distribution.urls"))]
urlpatterns += [path("", include("commissions.urls"))]
urlpatterns += [path("", include("riskcontrol.urls"))]

from . import two_factor  # noqa: E402

urlpatterns += [
    path("security/2fa/setup/", two_factor.setup, name="two-factor-setup"),
    path("security/2fa/verify/", two_factor.verify, name="two-factor-verify"),
]
