"""The peer project of the benchmark: djangorestframework-simplejwt and django-oauth-toolkit
configured as their documentation recommends, and a bare DRF view (the floor)."""
