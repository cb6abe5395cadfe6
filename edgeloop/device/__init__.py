"""The device runtime: model manager, durable buffer, uplinks and the inference loop (numpy, onnxruntime)."""
