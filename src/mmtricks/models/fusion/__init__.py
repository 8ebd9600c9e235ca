"""Fusion modules: per-modality tokens in, one fused vector (B, out_dim) out."""
