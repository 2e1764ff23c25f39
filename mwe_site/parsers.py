"""The API's JSON parser: DRF's, refusing a body nested deeper than JSON_MAX_DEPTH with a 400 before
json.loads sees it. The json module recurses once per nested array or object, so a body of 100,000
'[' (200 KB, well under DATA_UPLOAD_MAX_MEMORY_SIZE, which DRF enforces by reading request.body)
raised RecursionError, a 500. Every body this site accepts is an object of scalars (depth 1); 32
leaves room for any future API while staying far below Python's recursion limit (1,000)."""

from __future__ import annotations

import codecs
import io

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from generation.catalog.formats import json_nesting_over

JSON_MAX_DEPTH = 32


class DepthLimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(raw, encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if json_nesting_over(text, JSON_MAX_DEPTH)[0]:
            raise ParseError(f"JSON nested deeper than {JSON_MAX_DEPTH} levels.")
        return super().parse(io.BytesIO(raw), media_type, parser_context)
