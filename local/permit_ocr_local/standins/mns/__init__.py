"""Local MNS stand-in (topic PublishMessage), split as moto splits a service: state, auth, errors, server."""

from .model import PublishedMessage, Subscription
from .server import MnsServer, MnsService, start_mns
from .state import MnsState

__all__ = ["MnsServer", "MnsService", "MnsState", "PublishedMessage", "Subscription", "start_mns"]
