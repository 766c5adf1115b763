from __future__ import annotations

from django.contrib import admin

from customers.models import AttributeDefinition, Customer, CustomerMerge, CustomerNote, Identity


class IdentityInline(admin.TabularInline[Identity, Customer]):
    model = Identity
    extra = 0


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ["pk", "name", "external_id", "language", "is_vip", "merged_into", "created_at"]
    list_filter = ["is_vip", "language"]
    search_fields = ["name", "external_id", "identities__value"]
    inlines = [IdentityInline]
    raw_id_fields = ["merged_into"]


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin[Identity]):
    list_display = ["kind", "value", "customer", "verified"]
    list_filter = ["kind", "verified"]
    search_fields = ["value"]
    raw_id_fields = ["customer"]


@admin.register(CustomerMerge)
class CustomerMergeAdmin(admin.ModelAdmin[CustomerMerge]):
    list_display = ["source", "target", "merged_by", "merged_at", "undone_at"]
    raw_id_fields = ["source", "target"]


@admin.register(CustomerNote)
class CustomerNoteAdmin(admin.ModelAdmin[CustomerNote]):
    list_display = ["customer", "author", "created_at"]
    raw_id_fields = ["customer"]


@admin.register(AttributeDefinition)
class AttributeDefinitionAdmin(admin.ModelAdmin[AttributeDefinition]):
    """Staff define the typed custom attributes here (global, or one team's)."""

    list_display = ["key", "label", "type", "team", "position"]
    list_filter = ["type", "team"]
    search_fields = ["key", "label"]
