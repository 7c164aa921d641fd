from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import redirect
from django.urls import path


@staff_member_required
def console_home(request):
    return redirect("admin:index")


urlpatterns = [path("", console_home, name="home")]
