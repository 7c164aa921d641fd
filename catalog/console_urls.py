from catalog.console import home, imports, stock, upstream

app_name = "console"
urlpatterns = [*home.urlpatterns, *imports.urlpatterns, *stock.urlpatterns, *upstream.urlpatterns]
