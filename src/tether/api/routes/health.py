from fastapi import APIRouter

from tether import __version__

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness; open to all."""
    return {"status": "ok", "version": __version__}
