"""A case's reach report: ledger counts per wave, channel and partner, time to 50/90/99 % sent,
partner-reported reach, a k-anonymous map per H3 resolution-5 cell, a plot, CSV and PNG."""
