"""Stock views in the console: revealing one card-key secret (permission + audit)."""

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.views.decorators.cache import never_cache

from catalog import services
from catalog.models import CardKey


@never_cache
@staff_member_required
@permission_required("catalog.reveal_cardkey_secret", raise_exception=True)
def card_key_reveal(request, pk):
    """GET asks for confirmation; only a POST decrypts, so a prefetch or a link never reveals."""
    card_key = get_object_or_404(CardKey.objects.select_related("product"), pk=pk)
    secret = None
    if request.method == "POST":
        secret = services.reveal_card_key_secret(card_key=card_key, actor=request.user, request=request)
    return render(
        request, "catalog/console/card_key_reveal.html", {"card_key": card_key, "secret": secret, "title": "查看卡密"}
    )


urlpatterns = [path("card-keys/<int:pk>/reveal/", card_key_reveal, name="card-key-reveal")]
