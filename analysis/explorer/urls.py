from django.urls import path

from analysis.explorer import views

app_name = "explorer"

urlpatterns = [
    path("", views.ExplorerView.as_view(), name="explorer"),
    path("build/", views.ExplorerBuildStartView.as_view(), name="build"),
    path("builds/<int:pk>/points.bin", views.payload_view, name="payload"),
    path("builds/<int:pk>/agreement.bin", views.agreement_view, name="agreement"),
    path("builds/<int:pk>/p-match.bin", views.p_match_view, name="p-match"),
    path("builds/<int:pk>/points/<int:index>/", views.point_view, name="point"),
    path("builds/<int:pk>/search/", views.search_view, name="search"),
]
