"""What people read: paper-shaped tables, plots, the report, compare, claims, the reference check, the
leaderboard entry and the headline."""
