"""The DICOM services the node offers on its associations."""

from .base import RunningOperation, Service, Session
from .verification import VerificationService

__all__ = ["RunningOperation", "Service", "Session", "VerificationService"]
