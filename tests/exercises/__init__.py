"""Tests of mobilevlm_mini.exercises, one module per lesson."""
