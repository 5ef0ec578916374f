from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    default = True


class StaffAdminConfig(admin_apps.AdminConfig):
    """Django's admin, on the site that asks staff who can move money for a one-time code."""

    default = False
    default_site = "accounts.admin_site.StaffAdminSite"
