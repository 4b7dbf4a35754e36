"""A soak of many simulated nights on the local stack (``make soak``; a four-night case in the suite)."""
