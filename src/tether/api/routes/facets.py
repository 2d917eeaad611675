"""``GET /datasets/{dataset}/facets``: counts of each metadata value and a histogram of
capture dates, for the catalog's facets."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from tether.api.deps import CallerDep, ConnDep
from tether.api.errors import documented
from tether.catalog import facets
from tether.schemas import Facets

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=documented(401, 422))


@router.get("/{dataset}/facets", response_model=Facets, responses=documented(404))
def dataset_facets(
    dataset: str,
    caller: CallerDep,
    conn: ConnDep,
    top: Annotated[int, Query(ge=1, le=100, description="values a field shows")] = facets.TOP,
    buckets: Annotated[int, Query(ge=1, le=100, description="date histogram bars")] = (
        facets.BUCKETS
    ),
) -> dict[str, Any]:
    """How many rows hold each value of the dataset's text and enum fields (`split`, `tag`,
    custom enums), the rest summed in `other`, and how its datetime fields spread."""
    return facets.facets(conn, caller.org_id, dataset, top=top, buckets=buckets)
