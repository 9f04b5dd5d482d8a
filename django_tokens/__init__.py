"""django-tokens: password, API-key and OAuth 2.0 token services on one keystore."""

__version__ = "0.1.0"
