from __future__ import annotations

from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        from customers import receivers  # noqa: F401  # Django's AppConfig.ready(): connect the receivers
