from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import SellerProfile, User


class SellerProfileInline(admin.StackedInline):
    model = SellerProfile
    can_delete = False
    readonly_fields = ("created_at",)
    extra = 0
    max_num = 1


@admin.register(User)
class ProjectUserAdmin(UserAdmin):
    inlines = [SellerProfileInline]
    list_display = (*UserAdmin.list_display, "is_seller")
    list_select_related = ("seller_profile",)

    @admin.display(boolean=True, description="seller")
    def is_seller(self, user: User) -> bool:
        return hasattr(user, "seller_profile")
