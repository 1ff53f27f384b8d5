from django.urls import path

from .shop import views

urlpatterns = [
    path("shop/imports/", views.start_import),
    path("shop/imports/<str:run_id>/cancel/", views.stop_import),
    path("shop/runs/<str:run_id>/", views.watch_page),
    path("shop/imports/<str:run_id>/cancel-sync/", views.stop_import_sync),
    path("shop/count/", views.count_view),
    path("shop/runs/<str:run_id>/events/", views.events_view),
]
