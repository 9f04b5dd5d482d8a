from django.contrib import admin

from example_project.demo.models import CustomerProfile


@admin.register(CustomerProfile)
class CustomerProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "client", "level", "utype", "cust_id")
    search_fields = ("user__username", "client")
