"""The closed loop of cases: category tree, working calendar, deadlines, workflow, indicators."""
