"""tlviz: see transfer learning work on images. UI-free; the dashboard sits on top."""

__version__ = "0.1.0"
