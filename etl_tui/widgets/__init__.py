"""Reusable widgets of the console (intrinsic style only; layout lives in app.tcss)."""
