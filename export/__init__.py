"""onepass.export: ONNX and TensorRT export with parity checks (the export issue)."""
