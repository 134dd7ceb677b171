"""hush's errors as the statuses an API client expects; any other stays a 500.

By the time an exception gets here, every transaction.atomic() block it left
has rolled back."""
from http import HTTPStatus
from typing import Callable

import hush
from django.http import HttpRequest, HttpResponse, JsonResponse

HTTP_STATUS = [(hush.SecretNotFound, 404), (hush.TenantAccessDenied, 403), (hush.PermissionDenied, 403),
               (hush.VersionConflict, 409), (hush.InvalidInput, 422)]


class HushErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, hush.HushError):
            return None
        status = next((code for cls, code in HTTP_STATUS if isinstance(exc, cls)), 500)
        # The SQLSTATE, not the message: it names the tenant and the secret, which are yours to log.
        return JsonResponse({"detail": HTTPStatus(status).phrase, "code": exc.code}, status=status)
