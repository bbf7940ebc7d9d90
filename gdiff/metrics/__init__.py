"""Sample-quality metrics."""
