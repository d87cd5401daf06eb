"""Training loops: whole-trace and streaming."""
