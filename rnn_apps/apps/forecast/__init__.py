"""Time-series forecasting with recurrent networks (direct multi-horizon or recursive one-step)."""
