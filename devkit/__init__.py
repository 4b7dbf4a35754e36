"""Development kit: the local stack (emulator), the demo and sample data. Not shipped in the layer."""
