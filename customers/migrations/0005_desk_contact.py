"""The address that names a customer with no name (Customer.contact), filled for existing customers."""

from django.db import migrations, models

CONTACT_RANK = {"phone": 0, "whatsapp": 1, "email": 2, "telegram": 3, "instagram": 3, "viber": 4, "messenger": 4}


def fill(apps, schema_editor):
    # A frozen copy of customers.services.best_contact: migrations must not import app code that
    # changes later. Phone-likeness is checked when shown, so a WhatsApp id is kept as it is here.
    Customer = apps.get_model("customers", "Customer")
    Identity = apps.get_model("customers", "Identity")
    best = {}
    for identity in Identity.objects.order_by("customer_id", "pk").iterator(chunk_size=2000):
        if identity.kind in ("phone", "whatsapp", "email"):
            shown = identity.value
        else:
            shown = identity.display
        rank = (0 if shown else 1, CONTACT_RANK.get(identity.kind, 9), not identity.verified, identity.pk)
        current = best.get(identity.customer_id)
        if current is None or rank < current[0]:
            best[identity.customer_id] = (rank, identity.kind, shown)
    for customer_id, (_, kind, shown) in best.items():
        Customer.objects.filter(pk=customer_id).update(contact_kind=kind, contact=shown)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0004_identity_kind_instagram"),
    ]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="contact",
            field=models.CharField(blank=True, editable=False, max_length=320),
        ),
        migrations.AddField(
            model_name="customer",
            name="contact_kind",
            field=models.CharField(blank=True, editable=False, max_length=16),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
