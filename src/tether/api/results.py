"""One shape for the per-item results of bulk calls (delete, assign, clear):
``{index, id?, global_key?, ok, code?, message?}``, beside the fields earlier versions sent
(``data_row_id``, ``deleted``, ``error``), which clients still read."""

from __future__ import annotations

from typing import Any


def uniform(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The service's results, in request order, each with its index, id, ok, code, message."""
    out = []
    for index, result in enumerate(raw):
        ok = bool(result.get("ok", result.get("deleted")))
        given = result.get("data_row_id")
        out.append(
            {
                **result,
                "index": index,
                "id": given if isinstance(given, int) and not isinstance(given, bool) else None,
                "ok": ok,
                "code": None if ok else result.get("code") or "not_found",
                "message": None if ok else result.get("error"),
            }
        )
    return out
