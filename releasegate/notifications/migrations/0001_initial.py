"""The notification models move here from the ops app, where they were created (ops 0001-0003).

Their tables stay as they are, under their old names (each model's Meta.db_table), with their rows:
this migration only tells Django's state that the models now belong to this app, and ops 0004
removes them from the state of ops. The content types (and so the permissions and admin history
that hang on them) are relabelled, so nothing points at models that are gone.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = ("notificationtarget", "delivery", "notice")


def _relabel(apps, old: str, new: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    taken = set(
        content_type.objects.filter(app_label=new, model__in=MOVED).values_list("model", flat=True)
    )
    content_type.objects.filter(app_label=old, model__in=set(MOVED) - taken).update(app_label=new)


def content_types_forward(apps, schema_editor) -> None:
    _relabel(apps, "ops", "notifications")


def content_types_backward(apps, schema_editor) -> None:
    _relabel(apps, "notifications", "ops")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('ops', '0003_notice_incident'),
        ('releases', '0004_merge_20261201_1158'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='NotificationTarget',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('email', 'E-mail'), ('webhook', 'Webhook')], max_length=16)),
                        ('url', models.URLField(blank=True, max_length=500)),
                        ('address', models.EmailField(blank=True, max_length=254)),
                        ('secret', models.CharField(blank=True, max_length=128)),
                        ('events', models.JSONField(default=list)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('removed_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notification_targets', to='releases.project')),
                    ],
                    options={
                        'db_table': 'ops_notificationtarget',
                        'ordering': ['project', 'id'],
                    },
                ),
                migrations.CreateModel(
                    name='Delivery',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('event', models.CharField(max_length=32)),
                        ('dedupe_key', models.CharField(max_length=100)),
                        ('payload', models.JSONField(default=dict)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Delivered'), ('failed', 'Failed')], default='pending', max_length=16)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('last_error', models.CharField(blank=True, max_length=500)),
                        ('response_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                        ('delivered_at', models.DateTimeField(blank=True, null=True)),
                        ('release', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='releases.release')),
                        ('target', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='notifications.notificationtarget')),
                    ],
                    options={
                        'verbose_name_plural': 'deliveries',
                        'db_table': 'ops_delivery',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='Notice',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('event', models.CharField(max_length=32)),
                        ('veto_id', models.PositiveBigIntegerField(blank=True, null=True)),
                        ('incident_id', models.PositiveBigIntegerField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('processed_at', models.DateTimeField(blank=True, null=True)),
                        ('release', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='releases.release')),
                    ],
                    options={
                        'db_table': 'ops_notice',
                        'ordering': ['created_at', 'id'],
                        'indexes': [models.Index(condition=models.Q(('processed_at__isnull', True)), fields=['created_at'], name='notice_unprocessed')],
                    },
                ),
                migrations.AddConstraint(
                    model_name='notificationtarget',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('kind', 'email'), ('secret', ''), ('url', ''), models.Q(('address', ''), _negated=True)), models.Q(('address', ''), ('kind', 'webhook'), models.Q(('url', ''), _negated=True), models.Q(('secret', ''), _negated=True)), _connector='OR'), name='notification_target_destination'),
                ),
                migrations.AddIndex(
                    model_name='delivery',
                    index=models.Index(fields=['status', 'created_at'], name='ops_deliver_status_01d16b_idx'),
                ),
                migrations.AddConstraint(
                    model_name='delivery',
                    constraint=models.UniqueConstraint(fields=('target', 'event', 'release', 'dedupe_key'), name='delivery_once_per_event'),
                ),
            ],
        ),
        migrations.RunPython(content_types_forward, content_types_backward),
    ]
