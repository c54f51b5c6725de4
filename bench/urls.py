"""The project's routes plus the baseline endpoint the public API is compared with."""

from django.urls import include, path

from bench.views import BaselineApi

urlpatterns = [
    path("bench/baseline", BaselineApi.as_view(), name="bench-baseline"),
    path("", include("config.urls")),
]
