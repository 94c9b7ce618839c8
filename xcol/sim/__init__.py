"""Exchange simulation: synthetic streams derived from the real protocols."""
