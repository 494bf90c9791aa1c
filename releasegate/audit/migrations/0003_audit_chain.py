import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_trigger")]

    operations = [
        migrations.CreateModel(
            name="AuditChain",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=80, unique=True)),
                ("project_id", models.BigIntegerField(blank=True, null=True, unique=True)),
                ("size", models.PositiveBigIntegerField(default=0)),
                ("head_hash", models.CharField(default="0" * 64, max_length=64)),
            ],
            options={"ordering": ["name"]},
        ),
        # Nullable until 0004 has put every existing event on its chain.
        migrations.AddField(
            model_name="auditevent",
            name="chain",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="audit.auditchain",
            ),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="entry_hash",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="auditevent", name="seq", field=models.PositiveBigIntegerField()
        ),
    ]
