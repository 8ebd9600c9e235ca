"""Per-modality encoders. Each returns tokens (batch, n_tokens, out_dim) for fusion."""
