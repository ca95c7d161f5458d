"""Compatibility names for importers not yet moved (`node.bench.intake`, a test): the API
now lives in `node.http.app` (`build_app`), `node.http.writes` (`parse_submission`,
`results_json`), `node.http.errors` (`error`, `hex32`) and `node.http.ports`
(`NodeService`). Import from those; this module goes once nothing imports it."""

from afterchain.node.http.app import build_app
from afterchain.node.http.errors import error, hex32
from afterchain.node.http.ports import NodeService
from afterchain.node.http.writes import parse_submission, results_json

__all__ = ["NodeService", "build_app", "error", "hex32", "parse_submission", "results_json"]
