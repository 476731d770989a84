"""The pipeline's stages, engine-agnostic: sources, loading, quarantine, reconciliation,
transform, quality, completeness, audit, alerts and the raw archive."""
