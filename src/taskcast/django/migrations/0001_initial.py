from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="Run",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False, verbose_name="ID")),
            ],
            options={
                "managed": False,
                "default_permissions": (),
                "permissions": [
                    ("submit_run", "Can submit taskcast runs"),
                    ("cancel_run", "Can cancel taskcast runs"),
                    ("view_all_runs", "Can see every taskcast run"),
                ],
            },
        ),
    ]
