"""What a soak of many simulated nights needs from the local stack: when schedules come due, tables that
change every day with a model of what they hold (the nights themselves: tests/soak/)."""
