"""Where frames come from: the template, its rectangles, the conditioning features, the frame schedule, and the
plan that opens and checks them together."""
