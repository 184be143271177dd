"""The processes' side of RabbitMQ besides FastStream's consumers: the connection and the
topology it declares (`connection`), confirmed publishes, events and request/reply (`publisher`).
"""

from shared.bus.connection import connect, declare_topology
from shared.bus.publisher import Bus, BusUnavailable, ReplyTimeout, encode

__all__ = ["Bus", "BusUnavailable", "ReplyTimeout", "connect", "declare_topology", "encode"]
