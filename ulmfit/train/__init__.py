"""Layer 4 of ulmfit, train: one loop driven by task objects (STYLE.md §5.2). Imports base, text and model.

`schedule` (STLR, discriminative LRs, gradual unfreezing), `tasks` (the LM and classifier losses), `loop` (`fit`),
`resume` (resume checkpoints and signals), `evaluate` (validation loss, accuracy, probabilities).
"""
