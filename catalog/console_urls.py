from django.urls import path

from . import console_views

app_name = "console"
urlpatterns = [
    path("", console_views.console_home, name="home"),
]
