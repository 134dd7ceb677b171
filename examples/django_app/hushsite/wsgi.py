"""WSGI entry point of the example site (gunicorn hushsite.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hushsite.settings")
application = get_wsgi_application()
