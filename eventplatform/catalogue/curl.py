"""The command to try a webhook ingress route: ``curl`` with the example event.

The command never holds a secret: the API key or signing secret is read from the environment
variable the instance file reads it from (``${ORDERS_API_KEY}``), or from a placeholder
variable named after the route when the file holds a literal. A signed route gets the Standard
Webhooks signature computed in the shell (``openssl`` HMAC-SHA256 over
``<webhook-id>.<webhook-timestamp>.<body>`` with the base64-decoded ``whsec_`` secret, as
standardwebhooks.com specifies).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from eventplatform.catalogue.model import WebhookRoute

__all__ = ["curl_command"]


def curl_command(route: WebhookRoute, example: Any) -> str:
    """A shell snippet that posts ``example`` to ``route`` (POSIX shell, curl, openssl)."""
    body = json.dumps(example, ensure_ascii=False)
    lines: list[str] = []
    headers = ["-H 'Content-Type: application/json'"]
    if route.api_key:
        variable = route.api_key_variable or _placeholder(route.connector, "API_KEY")
        lines.append(f"# {variable}: an API key of the route (settings.api_keys)")
        headers.insert(0, f'-H "X-API-Key: ${variable}"')
    if route.signed:
        variable = route.secret_variable or _placeholder(route.connector, "WEBHOOK_SECRET")
        lines += [
            f"# {variable}: a signing secret of the route (settings.signing_secrets, whsec_…)",
            f"body={shlex.quote(body)}",
            'ts="$(date +%s)"; id="msg_${ts}_$$"',
            f'key="$(printf %s "${{{variable}#whsec_}}" | base64 -d '
            "| od -An -tx1 | tr -d ' \\n')\"",
            'sig="$(printf %s "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC '
            '-macopt "hexkey:$key" -binary | base64)"',
        ]
        headers = [
            '-H "webhook-id: $id"',
            '-H "webhook-timestamp: $ts"',
            '-H "webhook-signature: v1,$sig"',
            *headers,
        ]
        data = '-d "$body"'
    else:
        data = f"-d {shlex.quote(body)}"
    command = [f"curl -i {shlex.quote(route.url)}", *headers, data]
    lines.append(" \\\n  ".join(command))
    return "\n".join(lines)


def _placeholder(connector: str, suffix: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "_", connector).strip("_").upper()
    return f"{stem}_{suffix}" if stem else suffix
