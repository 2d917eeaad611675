"""tether: label data where it lives.

The Python SDK is the public surface of this package: ``from tether import Client``.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tether.sdk import Client, Dataset, Job, TetherAPIError

__all__ = ["Client", "Dataset", "Job", "TetherAPIError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tether import sdk

        return getattr(sdk, name)
    raise AttributeError(name)
