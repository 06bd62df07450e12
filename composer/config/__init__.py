"""What the user asked for: the job file, parsed and range-checked, and the defaults composer fills in."""
