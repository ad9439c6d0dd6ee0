"""placeholder"""

from services.web.config import WebConfig


def openapi_document(config: WebConfig) -> dict:
    return {}
