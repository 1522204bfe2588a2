"""Import and export of model weights: Hugging Face / original LLaVA folders, orbax checkpoints."""
