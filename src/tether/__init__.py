"""tether: label data where it lives.

The Python SDK is the public surface of this package: ``from tether import Client``. Names
are loaded on first use, so importing ``tether`` stays light (no server code).
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tether.sdk import (
        Annotation,
        AuthenticationError,
        Client,
        ConflictError,
        Dataset,
        ForbiddenError,
        InvalidError,
        Job,
        JobTimeoutError,
        NotFoundError,
        Prediction,
        Project,
        Storage,
        TetherAPIError,
        TooLargeError,
    )

__all__ = [
    "Annotation",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "Dataset",
    "ForbiddenError",
    "InvalidError",
    "Job",
    "JobTimeoutError",
    "NotFoundError",
    "Prediction",
    "Project",
    "Storage",
    "TetherAPIError",
    "TooLargeError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tether import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'tether' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
