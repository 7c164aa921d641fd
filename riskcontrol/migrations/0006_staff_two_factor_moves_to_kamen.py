"""StaffTwoFactor now belongs to kamen (kamen 0003 takes it over): the state only, the table stays."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("riskcontrol", "0005_unverified_callback_signal"),
        ("kamen", "0003_staff_two_factor"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="StaffTwoFactor")],
            database_operations=[],
        ),
    ]
