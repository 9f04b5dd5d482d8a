"""The peer project without simplejwt's blacklist app: refresh tokens still rotate, but no
outstanding-token row is written on issuance and nothing is blacklisted."""

from benchmarks.peers.settings import *  # noqa: F403
from benchmarks.peers.settings import INSTALLED_APPS, SIMPLE_JWT

INSTALLED_APPS = [
    app for app in INSTALLED_APPS if app != "rest_framework_simplejwt.token_blacklist"
]
SIMPLE_JWT = {**SIMPLE_JWT, "BLACKLIST_AFTER_ROTATION": False}
