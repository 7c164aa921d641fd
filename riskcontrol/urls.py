from django.urls import path

from . import views

app_name = "riskcontrol"
urlpatterns = [
    path("agent/real-name/", views.real_name, name="real-name"),
]
