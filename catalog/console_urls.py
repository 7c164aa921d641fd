from catalog.console import home, imports, stock

app_name = "console"
urlpatterns = [*home.urlpatterns, *imports.urlpatterns, *stock.urlpatterns]
