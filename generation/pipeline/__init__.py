"""The generation pipeline: a model writes candidates, a discriminator scores them, the best are kept."""
