"""Drawing text: the sampler, the one request of `sample`, endings, beam search, novelty."""
