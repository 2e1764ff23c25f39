"""The production static files storage: WhiteNoise's compressed manifest storage (hashed names served
with a year's cache lifetime), which also rewrites the relative imports of the site's ES modules
(static/js/explorer/) to their hashed names.

Without that rewrite, main.<hash>.js would import ./data.js by its plain name: a deploy that changed
data.js would leave browsers pairing a new main with a cached old data.js, or the reverse. Django's
own switch for it (support_js_module_import_aggregation) rewrites imports in every *.js file,
plotly.js's 4 MB bundle included, where import-like text that is not a module import would make
collectstatic look for files that do not exist; so the rewrite applies to the site's modules only.
"""

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage

# The folders holding the site's ES modules, whose relative imports are rewritten to hashed names.
MODULE_PATTERNS = ("js/explorer/*.js",)


class SiteStaticFilesStorage(CompressedManifestStaticFilesStorage):
    patterns = CompressedManifestStaticFilesStorage.patterns + tuple(
        (pattern, ManifestStaticFilesStorage._js_module_import_aggregation_patterns[1])
        for pattern in MODULE_PATTERNS
    )
