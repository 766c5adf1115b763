# Send later (docs/manager-tools.md): a reply may wait as "scheduled" until its send_at. The index
# is built concurrently on PostgreSQL (common.schema): messages stay writable while it is built.

from django.db import migrations, models

from common.schema import AddIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('inbox', '0006_channel_medium_instagram'),
    ]

    operations = [
        migrations.AddField(
            model_name='message',
            name='send_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='message',
            name='status',
            field=models.CharField(blank=True, choices=[('received', 'Received'), ('queued', 'Queued'), ('sending', 'Sending'), ('sent', 'Sent'), ('delivered', 'Delivered'), ('read', 'Read'), ('failed', 'Failed'), ('scheduled', 'Scheduled'), ('cancelled', 'Cancelled'), ('', '—')], max_length=10),
        ),
        AddIndexOnline(
            model_name='message',
            index=models.Index(condition=models.Q(('status', 'scheduled')), fields=['send_at'], name='msg_scheduled'),
        ),
    ]
