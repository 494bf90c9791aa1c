"""The notification models now belong to the notifications app (its 0001_initial): they leave the
state of ops; their tables and rows stay."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ops', '0003_notice_incident'),
        ('notifications', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name='Delivery'),
                migrations.DeleteModel(name='Notice'),
                migrations.DeleteModel(name='NotificationTarget'),
            ],
        ),
    ]
