"""The pipeline's work: fetch → script → audio → slides → video, usable without the daemon."""
