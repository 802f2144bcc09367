"""The API's adapters onto ``serving/``: domain ports (fraud, ETA promises) answered by the models."""
