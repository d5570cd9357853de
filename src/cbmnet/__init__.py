"""cbmnet."""
