"""ulmfit: Universal Language Model Fine-tuning (Howard & Ruder 2018) on an AWD-LSTM, from scratch on torch."""
__version__ = "0.1.0"
