"""Settings of the example site: partners' credentials kept in hush
(docs/python-guide.md, "Django").

The database entry is the recipe:

- OPTIONS server_side_binding: Django's psycopg 3 backend binds parameters on
  the client by default (psycopg's ClientCursor), which writes every value, a
  secret included, into the statement text: pg_stat_activity, the statement
  log, error reports. hush's own statements bind on the server whatever the
  connection's cursor class, but your queries do not; the partners app's system
  check (partners.E001) fails at startup.
- TEST TEMPLATE: `manage.py test` creates test_<NAME> as USER, and CREATE
  EXTENSION hush needs a superuser (plpython3u is untrusted). So a superuser
  prepares a template database once (hush installed, the app's role granted
  its tenants, IS_TEMPLATE true) and Django clones it; USER needs CREATEDB.

The connection pieces come from the environment so that tests/test_django_app.py
can point the site at its own cluster: DJANGO_DB_NAME, DJANGO_DB_USER,
DJANGO_DB_HOST (a socket directory or a host name), DJANGO_DB_PORT,
DJANGO_DB_TEST_TEMPLATE. No password: use ~/.pgpass, a client certificate or
peer authentication, as for any libpq client.
"""
import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = ["partners"]
# An API-only site: no sessions, no CSRF cookies. hush's errors become JSON statuses.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "partners.middleware.HushErrorMiddleware",
]
ROOT_URLCONF = "hushsite.urls"
WSGI_APPLICATION = "hushsite.wsgi.application"

USE_TZ = True  # hush's timestamps arrive aware (Django's psycopg loader drops the zone with USE_TZ = False)
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("DJANGO_DB_NAME", "app"),
        "USER": os.environ.get("DJANGO_DB_USER", "billing_app"),
        "HOST": os.environ.get("DJANGO_DB_HOST", ""),
        "PORT": os.environ.get("DJANGO_DB_PORT", ""),
        # Values as bind parameters, never in the SQL text: required by hush.
        "OPTIONS": {"server_side_binding": True},
        # The test database is a copy of a database where hush is installed.
        "TEST": {"TEMPLATE": os.environ.get("DJANGO_DB_TEST_TEMPLATE", "hush_template")},
    }
}
