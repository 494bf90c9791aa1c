"""The benchmark's floor: a DRF view with a constant body, and the same view reading PostgreSQL
once (`SELECT 1` on a kept connection). Served by bench/gate_api.py with bench/bare_settings.py."""

from typing import Any

from django.db import connection
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class BareView(APIView):
    def get(self, request: Request) -> Response:
        return Response({"cleared": True})


class OneReadView(APIView):
    def get(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            (value,) = cursor.fetchone()
        return Response({"cleared": value == 1})


urlpatterns: list[Any] = [
    path("bare", BareView.as_view()),
    path("one-read", OneReadView.as_view()),
]
