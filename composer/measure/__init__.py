"""How composer is measured: stage costs, profile, sweep, the machine, reports, traces and timelines."""
