"""The generic N-source semi-supervised trainer (supervised + adversarial + additive penalty)."""
