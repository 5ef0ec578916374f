"""Back-office building blocks shared by the apps: read-only admins and inlines, and the
extension points through which one app adds to another's admin page explicitly (no patching)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.urls import URLPattern


class ReadOnlyAdminMixin:
    """Shows rows; never adds, changes or deletes them."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class StaffInlineMixin(ReadOnlyAdminMixin):
    """A read-only inline shown to every staff member who may open its parent page."""

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_staff


#: (model admin, request, object) -> (id, label, url), or None when the tool does not apply
ObjectTool = Callable[[Any, Any, Any], tuple[str, str, str] | None]


@dataclass
class AdminExtension:
    """What other apps add to a model admin: inlines, object tools on its change page, and
    URLs under it (each a callable taking the model admin). An app registers into it from its
    own ``admin`` module, e.g. ``PaymentTransactionAdmin.extension.inlines.append(...)``."""

    inlines: list[type] = field(default_factory=list)
    object_tools: list[ObjectTool] = field(default_factory=list)
    urls: list[Callable[[Any], list[URLPattern]]] = field(default_factory=list)


class ExtensibleAdminMixin:
    """A model admin with an ``extension`` that other apps add to. Subclasses declare their
    own ``extension = AdminExtension()``."""

    extension: AdminExtension

    def get_inlines(self, request, obj):  # type: ignore[no-untyped-def]
        return [*self.extension.inlines, *super().get_inlines(request, obj)]  # type: ignore[misc]

    def get_urls(self):  # type: ignore[no-untyped-def]
        extra = [url for make in self.extension.urls for url in make(self)]
        return [*extra, *super().get_urls()]  # type: ignore[misc]

    def extension_tools(self, request, obj) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
        tools = (tool(self, request, obj) for tool in self.extension.object_tools)
        return [t for t in tools if t]
