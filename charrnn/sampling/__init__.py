"""Drawing text: the sampler and its `Request`, shaping samples (whole items, stop strings,
beam search, novelty: :mod:`charrnn.sampling.shaping`), endings, beam search, novelty."""
