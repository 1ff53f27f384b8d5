import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
django_application = get_asgi_application()

from taskcast.django.asgi import with_taskcast  # noqa: E402  (after Django is set up)

application = with_taskcast(django_application)
