"""One experiment config per public LLaVA checkpoint (shapes and token ids as published)."""
