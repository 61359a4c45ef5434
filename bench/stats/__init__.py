"""Statistics as pure functions: no I/O, no printing. ``summary``: a run's figures;
``intervals``: ratios with t intervals; ``verdicts``: decisions, round allocation, the gate;
``calibration``: what an A/A run says of the machine's noise."""
