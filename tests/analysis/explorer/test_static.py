"""The explorer's ES modules as production serves them: collectstatic with production's storage
gives every module a hashed name and rewrites each relative import to the imported module's hashed
name, so a browser holding a year-cached module never pairs it with another version of its imports."""

import ast
import json
import re
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from tests.test_production import manage

IMPORT = re.compile(r"""\bfrom\s*["'](\.[^"']+)["']""")


def production_static_storage() -> str:
    shown = manage(
        ["shell", "-c", "from django.conf import settings; print(settings.STORAGES['staticfiles'])"]
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip().splitlines()[-1]


def test_production_serves_module_imports_by_their_hashed_names(tmp_path):
    modules = sorted(p.name for p in (Path(settings.BASE_DIR) / "static" / "js" / "explorer").glob("*.js"))
    assert "main.js" in modules and "data.js" in modules
    with override_settings(
        STORAGES={**settings.STORAGES, "staticfiles": ast.literal_eval(production_static_storage())},
        STATIC_ROOT=tmp_path,
        # The site's own files only: plotly.js's bundle is copied as it is and takes seconds to compress.
        STATICFILES_DIRS=[Path(settings.BASE_DIR) / "static"],
    ):
        call_command("collectstatic", "--noinput", verbosity=0)
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    hashed = {name: manifest[f"js/explorer/{name}"] for name in modules}
    imported = set()
    for name, path in hashed.items():
        assert re.fullmatch(rf"js/explorer/{re.escape(name[:-3])}\.[0-9a-f]{{12}}\.js", path), path
        source = (Path(settings.BASE_DIR) / "static" / "js" / "explorer" / name).read_text()
        served = (tmp_path / path).read_text()
        wanted = IMPORT.findall(source)
        rewritten = IMPORT.findall(served)
        assert len(rewritten) == len(wanted), name
        for plain, target in zip(wanted, rewritten, strict=True):
            assert target == "./" + Path(hashed[plain.removeprefix("./")]).name, (name, plain, target)
            assert (tmp_path / "js" / "explorer" / Path(target).name).is_file()
            imported.add(plain.removeprefix("./"))
    # Every module is reached from main.js: none is left unused by the split.
    assert imported | {"main.js"} == set(modules)
