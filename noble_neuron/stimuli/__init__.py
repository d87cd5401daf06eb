"""Stimuli as data: Long Squares, ramps, noise, barrages, presets and rheobase-relative plans; synaptic drives for benchmarks."""
