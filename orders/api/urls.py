"""/api/: the open API, its OpenAPI schema (/api/schema/) and docs page (/api/docs/)."""

from .views import api

app_name = "api"  # the views' namespace (NinjaAPI urls_namespace)
urlpatterns = list(api.urls[0])
