import pytest
from django.core.management import call_command

from catalog.models import CardKey, CardKeyImport, ImportStatus


@pytest.mark.django_db
def test_demo_data_loads_twice_without_duplicating_anything(settings, tmp_path, django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = tmp_path

    with django_capture_on_commit_callbacks(execute=False):
        call_command("load_demo_data", stdout=open("/dev/null", "w"))
        call_command("load_demo_data", stdout=open("/dev/null", "w"))

    assert CardKey.objects.count() == 20
    assert CardKeyImport.objects.get().status == ImportStatus.COMPLETED
