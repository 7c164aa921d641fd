"""One web host for the two-host tests, run as its own process: its own local directories (from
the environment), the database and the object store it shares with the other host. Runs one
request through Django's test client and prints what the test needs as JSON.

    python -m kamen.tests.web_host upload-image <product_id> <user_id> <png file>
    python -m kamen.tests.web_host product-page <product_id>
    python -m kamen.tests.web_host poster <product_id> <user_id>
"""

import hashlib
import json
import re
import sys

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from catalog.models import Product  # noqa: E402
from kamen.tests.test_admin_console import product_form_data  # noqa: E402


def _client_for(user_id: int) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(pk=user_id))
    return client


def upload_image(product_id: str, user_id: str, path: str) -> dict:
    product = Product.objects.get(pk=product_id)
    with open(path, "rb") as handle:
        upload = SimpleUploadedFile("photo.png", handle.read(), content_type="image/png")
    response = _client_for(int(user_id)).post(
        reverse("admin:catalog_product_change", args=[product.pk]),
        product_form_data(product, is_on_shelf="on", new_image=upload),
    )
    return {"status": response.status_code, "image": product.images.get().image.name}


def product_page(product_id: str) -> dict:
    response = Client().get(reverse("catalog:product-detail", args=[product_id]))
    sources = re.findall(r'<img src="([^"]+)"', response.content.decode())
    return {"status": response.status_code, "images": [source.replace("&amp;", "&") for source in sources]}


def poster(product_id: str, user_id: str) -> dict:
    response = _client_for(int(user_id)).get(reverse("distribution:agent-poster-image", args=[product_id]))
    return {"status": response.status_code, "sha256": hashlib.sha256(response.content).hexdigest()}


COMMANDS = {"upload-image": upload_image, "product-page": product_page, "poster": poster}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:])))
