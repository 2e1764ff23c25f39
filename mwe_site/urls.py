from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from annotation import token_views
from generation.catalog import api as catalog_api
from generation.evaluation import api as evaluation_api
from generation.evaluation import suite_api, suite_figures_api
from generation.pipeline import api as pipeline_api
from mwe_site import admin_login
from mwe_site.health import health

router = DefaultRouter()
router.register("collections", catalog_api.CollectionViewSet, basename="api-collection")
router.register("datasets", catalog_api.DatasetViewSet, basename="api-dataset")
router.register("examples", catalog_api.ExampleViewSet, basename="api-example")
router.register("evaluation-runs", evaluation_api.EvaluationRunViewSet, basename="api-evaluation-run")
router.register("evaluation-suites", suite_api.EvaluationSuiteViewSet, basename="api-evaluation-suite")
router.register("generation-runs", pipeline_api.GenerationRunViewSet, basename="api-generation-run")

# The annotation API comes first: it takes most of the requests under load, and Django tries the
# patterns in order.
urlpatterns = [
    path("api/", include("annotation.api_urls")),
    # The researchers' API (annotation/researcher_api.py): projects, their workers, their figures.
    path("api/", include("annotation.researcher_api_urls")),
    # Its own path, before the router's: a suite's figures, whoever serves the suites themselves.
    path(
        "api/evaluation-suites/<int:pk>/figures/",
        suite_figures_api.SuiteFiguresView.as_view(),
        name="api-evaluation-suite-figures",
    ),
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file, so the Content Security Policy
    # needs no inline scripts. (No ReDoc: its page loads fonts and images from the internet.)
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Before the admin's own patterns, so its login page (admin:login, LOGIN_URL) is this one.
    path("admin/login/", admin_login.login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
    # A researcher's API tokens (the researcher API's credentials).
    path("account/tokens/", token_views.TokenListView.as_view(), name="account-tokens"),
    path(
        "account/tokens/<int:pk>/revoke/", token_views.TokenRevokeView.as_view(), name="account-token-revoke"
    ),
    path("annotate/", include("annotation.urls")),
    path("analysis/", include("analysis.agreement.urls")),
    path("explore/", include("analysis.explorer.urls")),
    path("", include("generation.urls")),
]
