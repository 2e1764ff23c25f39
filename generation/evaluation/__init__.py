"""Evaluation: any model scored on a dataset by argmax over the answer choices' log-probabilities."""
