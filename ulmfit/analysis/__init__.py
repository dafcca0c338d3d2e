"""Layer 5 of ulmfit, analysis: reading results (STYLE.md §5.2). Imports base, text, model and train.

`metrics` (accuracy, F1, confusion), `baseline` (TF-IDF + LR), `explain` (attributions), `plots` (loss and LR plots).
"""
