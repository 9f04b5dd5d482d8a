from django.conf import settings
from django.db import models


class CustomerProfile(models.Model):
    """Per-user facts that the example's claims hook copies into access tokens (seed 001)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_profile"
    )
    phone = models.CharField(max_length=32, blank=True)
    client = models.CharField(max_length=100, blank=True)
    parent = models.CharField(max_length=100, blank=True)
    level = models.CharField(max_length=32, default="CUSTOMER")
    utype = models.CharField(max_length=32, default="API")
    cust_id = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"profile of {self.user}"
