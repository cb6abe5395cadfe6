"""edgeloop: train, gate, register, roll out and learn back from a Greengrass v2 edge fleet."""

__version__ = "0.1.0"
