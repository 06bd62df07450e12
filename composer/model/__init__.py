"""The ONNX model: sessions and their providers, and the models composer builds in code (demo, tests, benchmarks)."""
