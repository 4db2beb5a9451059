"""The gateway's pages for browsers: Swagger UI at /docs, the console at /console, and the
OpenAPI document the build generates at /openapi.json (docs/observability.md, "Console and API
docs").

Envoy serves them itself, one route a file with `direct_response` reading the file when the
config loads, so no extra process runs and the pages are up exactly when the gateway is. The
files are the folders gateway/ui/docs and gateway/ui/console (ours, tracked) and the few files
of swagger-ui-dist the page loads, from gateway/ui/node_modules (npm ci by tools/setup.sh,
pinned by gateway/ui/package-lock.json). None of these routes needs a token; the API calls the
pages make do (the template's jwt_authn rules list UI_PREFIXES).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UI_DIR = "gateway/ui"
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")
"""What gateway/ui/docs/index.html loads from swagger-ui-dist."""
UI_PREFIXES = ("/docs", "/console")
OPENAPI_PATH = "/openapi.json"
MAX_FILE_BYTES = 4 * 1024 * 1024
"""Envoy's bound on a direct_response body (its default, 4 KiB, is far below Swagger UI's
1.7 MB bundle); a file above it fails the config load, so raising it is a visible change."""
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
}


@dataclass(frozen=True)
class StaticFile:
    path: str
    """The exact request path."""
    source: Path


def ui_root(repo_root: Path) -> Path:
    """gateway/ui in the workspace. Under `bazel test` the lockfile's runfile is a symlink into
    the workspace, which is where npm ci put node_modules (listed in .bazelignore, so never
    data: clients/typescript/BUILD.bazel says why)."""
    return (repo_root / UI_DIR / "package-lock.json").resolve().parent


def swagger_ui_dist(repo_root: Path) -> Path:
    dist = ui_root(repo_root) / "node_modules" / "swagger-ui-dist"
    if not (dist / SWAGGER_UI_FILES[0]).exists():
        raise FileNotFoundError(f"{dist} has no Swagger UI: run tools/setup.sh (make setup)")
    return dist


def _page(prefix: str, folder: Path) -> list[StaticFile]:
    """A folder's index.html at the prefix (with and without a slash) and its other files
    beside it."""
    files = [
        StaticFile(prefix, folder / "index.html"),
        StaticFile(f"{prefix}/", folder / "index.html"),
    ]
    for source in sorted(folder.iterdir()):
        if source.name != "index.html" and source.suffix in CONTENT_TYPES:
            files.append(StaticFile(f"{prefix}/{source.name}", source))
    return files


def static_files(repo_root: Path, openapi_document: Path) -> list[StaticFile]:
    """Every file the gateway serves to browsers, by request path."""
    dist = swagger_ui_dist(repo_root)
    files = _page("/docs", repo_root / UI_DIR / "docs")
    files += [StaticFile(f"/docs/{name}", dist / name) for name in SWAGGER_UI_FILES]
    files += _page("/console", repo_root / UI_DIR / "console")
    files.append(StaticFile(OPENAPI_PATH, openapi_document))
    for f in files:
        if not f.source.exists():
            raise FileNotFoundError(f"{f.source} (served at {f.path}): run `make build`")
        if f.source.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"{f.source} is over {MAX_FILE_BYTES} bytes, Envoy's bound")
    return files


def envoy_static_route(f: StaticFile) -> dict[str, Any]:
    """GET (and HEAD, which the edge filter turns into GET) of one file, answered by Envoy."""
    return {
        "name": "ui" + f.path.replace("/", "_").replace(".", "_").replace("-", "_"),
        "match": {
            "path": f.path,
            "headers": [{"name": ":method", "string_match": {"exact": "GET"}}],
        },
        "direct_response": {"status": 200, "body": {"filename": str(f.source.absolute())}},
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": CONTENT_TYPES[f.source.suffix]},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
            {
                "header": {"key": "cache-control", "value": "no-cache"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
        ],
        "typed_per_filter_config": {
            "envoy.filters.http.grpc_json_transcoder": {
                "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                "disabled": True,
            }
        },
    }


def render_static_routes(repo_root: Path, openapi_document: Path, indent: str) -> str:
    """The routes as YAML list items, one JSON object a line, for the template."""
    items = (
        f"- {json.dumps(envoy_static_route(f))}" for f in static_files(repo_root, openapi_document)
    )
    return f"\n{indent}".join(items)


def jwt_exemptions() -> list[dict[str, Any]]:
    """jwt_authn rules that let the pages themselves load without a token."""
    rules: list[dict[str, Any]] = [{"match": {"path": OPENAPI_PATH}}]
    for prefix in UI_PREFIXES:
        rules += [{"match": {"path": prefix}}, {"match": {"prefix": f"{prefix}/"}}]
    return rules
