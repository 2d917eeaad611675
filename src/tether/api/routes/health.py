from fastapi import APIRouter

from tether import __version__
from tether.api.errors import documented
from tether.schemas import Health

router = APIRouter(tags=["health"], responses=documented(422))


@router.get("/health", response_model=Health)
async def health() -> dict[str, str]:
    """Liveness; open to all."""
    return {"status": "ok", "version": __version__}
