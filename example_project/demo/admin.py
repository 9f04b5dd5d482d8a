from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from django_tokens.admin import ApiKeyInline, UserTokensAdminMixin
from example_project.demo.models import CustomerProfile

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(UserTokensAdminMixin, DjangoUserAdmin):
    """Django's user admin, with each user's API keys and a "revoke all credentials" action."""

    inlines = [*DjangoUserAdmin.inlines, ApiKeyInline]
    actions = [*(DjangoUserAdmin.actions or []), "revoke_credentials"]


@admin.register(CustomerProfile)
class CustomerProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "client", "level", "utype", "cust_id")
    search_fields = ("user__username", "client")
