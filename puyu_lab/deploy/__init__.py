"""Deploy stage (LMDeploy): GGUF conversion, the quantization ladder, measurements, serving."""
