#!/usr/bin/env python
"""Django's command-line utility for the example site (examples/django_app).

    DJANGO_DB_NAME=app DJANGO_DB_USER=billing_app python manage.py runserver
    echo "$SIGNING_SECRET" | python manage.py set_webhook_secret acme
    python manage.py test partners       # test_<NAME>, cloned from DJANGO_DB_TEST_TEMPLATE
"""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hushsite.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
