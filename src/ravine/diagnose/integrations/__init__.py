"""Optional callbacks for Lightning and Hugging Face Trainer; each imports its framework lazily."""
