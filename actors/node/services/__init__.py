"""The DICOM services the node offers on its associations."""

from .base import Operation, Service, Session
from .verification import VerificationService

__all__ = ["Operation", "Service", "Session", "VerificationService"]
