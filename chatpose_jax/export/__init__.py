"""Export to Hugging Face / PyTorch: `hf_export` writes the folder, `torch_chatpose` runs it in PyTorch."""
