"""The settings row and the compliance word list the merchant starts from (and may edit)."""

from django.db import migrations

# The Advertising Law (广告法 art. 9) forbids absolute claims such as these.
BANNED_WORDS = [
    ("最", "绝对化用语"),
    ("第一", "绝对化用语"),
    ("国家级", "绝对化用语"),
    ("100%", "绝对化承诺"),
    ("顶级", "绝对化用语"),
    ("绝对", "绝对化用语"),
    ("唯一", "绝对化用语"),
    ("极品", "绝对化用语"),
    ("万能", "绝对化用语"),
    ("全网最低", "绝对化用语"),
    ("稳赚", "收益承诺"),
    ("躺赚", "收益承诺"),
    ("零风险", "收益承诺"),
]


def seed(apps, schema_editor):
    DistributionSettings = apps.get_model("distribution", "DistributionSettings")
    BannedWord = apps.get_model("distribution", "BannedWord")
    DistributionSettings.objects.get_or_create(pk=1)
    for word, note in BANNED_WORDS:
        BannedWord.objects.get_or_create(word=word, defaults={"note": note})


class Migration(migrations.Migration):
    dependencies = [("distribution", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
