"""Communication measures: hotlines, consultations, communication checks."""
