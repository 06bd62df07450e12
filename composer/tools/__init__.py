"""Helpers around a render: the demo's assets, the rectangles' contact sheet and model inspection."""
