"""Request parsers of the client API (imported by DRF's settings: no views imported here)."""

from __future__ import annotations

import codecs
import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from common.jsonbody import json_storage_problem


# --- parsing --------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows.")


class ExactJSONParser(JSONParser):
    """JSON with exact decimals: a number such as 12.50 becomes Decimal("12.50"), never a
    float; NaN and Infinity are refused; a body nested deeper than MAX_JSON_DEPTH or holding what
    no database stores (NUL, unpaired surrogates) is a parse error, not a 500."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            decoded = codecs.getreader(encoding)(stream)
            data = json.load(decoded, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, RecursionError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {str(exc)[:200]}") from None
        problem = json_storage_problem(data)
        if problem:
            raise ParseError(f"JSON parse error - not accepted: {problem}.")
        return data
