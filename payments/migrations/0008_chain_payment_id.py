from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("payments", "0007_webhook_dispatch")]

    operations = [
        migrations.AddField(
            model_name="paymenttransaction",
            name="chain_payment_id",
            field=models.CharField(blank=True, max_length=66, null=True, unique=True),
        ),
    ]
