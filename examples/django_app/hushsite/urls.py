"""URLs of the example site. In a real app the tenant comes from the authenticated
caller (its organisation), not from the path alone."""
from django.urls import path

from partners import views

urlpatterns = [
    path("webhooks/<str:tenant>/", views.webhook),
    path("partners/<str:tenant>/<slug:partner>/", views.connect_partner),
]
