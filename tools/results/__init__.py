"""Reading run folders into seed-aggregated result tables (used by tools/parse_results.py)."""
