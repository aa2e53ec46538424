"""Delivery channels: rendering, SMS planning and one provider client per file."""
