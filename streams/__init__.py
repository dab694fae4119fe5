"""The wire: topics, event models, codecs and the dead-letter path."""
