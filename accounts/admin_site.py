"""The back office's admin site: a password, then a one-time code for staff who need one.

With ``STAFF_OTP_REQUIRED`` on (the production default), a user who holds a refund, review or
status permission, or is a superuser, signs in with a password and a code from their
authenticator (django-otp TOTP), and the admin treats a session without the code as signed
out. Other staff sign in with a password alone. Lockout after failed passwords is django-axes'.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest
from django_otp import devices_for_user, user_has_device
from django_otp.admin import OTPAdminAuthenticationForm

from common.staffauth import second_factor_required, second_factor_verified


class StaffLoginForm(OTPAdminAuthenticationForm):
    """The admin login: the one-time code is checked only for users who need one."""

    otp_error_messages = {
        **OTPAdminAuthenticationForm.otp_error_messages,
        "token_required": "This account needs the one-time code from its authenticator app.",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["otp_token"].label = "One-time code"
        self.fields[
            "otp_token"
        ].help_text = "Staff who refund, review or set payment statuses: the 6-digit code."
        self.fields["otp_token"].widget.attrs.update(
            {"autocomplete": "one-time-code", "inputmode": "numeric"}
        )

    def _chosen_device(self, user: Any) -> Any:
        """The device picked in the form; else the user's only device, so a user with one
        authenticator (the usual case) types the code in the first form."""
        device = super()._chosen_device(user)
        if device is None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                device = devices[0]
        return device

    def clean(self) -> dict[str, Any]:
        self.cleaned_data = AdminAuthenticationForm.clean(self)
        user = self.get_user()
        if user is not None and second_factor_required(user):
            if not user_has_device(user):
                raise forms.ValidationError(
                    "This account needs a one-time code but has no authenticator set up: "
                    "an administrator enrols one (manage.py otp_enroll).",
                    code="otp_device_missing",
                )
            self.clean_otp(user)
        return self.cleaned_data


class StaffAdminSite(AdminSite):
    login_form = StaffLoginForm
    login_template = "admin/staff_login.html"
    index_title = "Back office"

    @property
    def site_header(self) -> str:  # type: ignore[override]
        return f"{settings.PLATFORM_NAME} back office"

    @property
    def site_title(self) -> str:  # type: ignore[override]
        return self.site_header

    def has_permission(self, request: HttpRequest) -> bool:
        """A session of a user who needs a second factor counts only once it was verified
        (e.g. a permission granted after the user signed in with a password alone)."""
        if not super().has_permission(request):
            return False
        user = request.user
        return not second_factor_required(user) or second_factor_verified(user)
