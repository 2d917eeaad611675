"""tether's Python SDK. It talks to a tether server over HTTP only.

from tether import Client
client = Client()  # TETHER_URL, TETHER_API_KEY
dataset = client.create_dataset("street-scenes")
job = dataset.create_data_rows([{"row_data": "s3://bucket/1.jpg", "global_key": "1"}])
job.wait_till_done()
"""

from tether.sdk._client import Client, Dataset, Job, Storage
from tether.sdk._errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidError,
    JobTimeoutError,
    NotFoundError,
    TetherAPIError,
    TooLargeError,
)
from tether.sdk._projects import Annotation, Prediction, Project

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
]
