"""Training loops of this generation (supervised instruction fine-tuning)."""
