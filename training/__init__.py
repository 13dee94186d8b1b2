"""Training for sitrep: read a labeled corpus, select and calibrate a model, write an artifact."""
