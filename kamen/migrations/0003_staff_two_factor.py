"""StaffTwoFactor moves from riskcontrol to kamen (the foundation owns staff log-in): the
state only; the table and its rows stay as they are (``db_table``)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kamen", "0002_audit_log_append_only"),
        ("riskcontrol", "0005_unverified_callback_signal"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="StaffTwoFactor",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("secret_ciphertext", models.BinaryField(editable=False)),
                        ("secret_key_id", models.CharField(editable=False, max_length=32)),
                        ("confirmed_at", models.DateTimeField(blank=True, null=True, verbose_name="启用时间")),
                        ("last_used_step", models.BigIntegerField(default=0, editable=False)),
                        ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="创建时间")),
                        (
                            "user",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="two_factor",
                                to=settings.AUTH_USER_MODEL,
                                verbose_name="用户",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "两步验证",
                        "verbose_name_plural": "两步验证",
                        "db_table": "riskcontrol_stafftwofactor",
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
