"""Running a sweep: the plan (rounds of paired cells), the runner (each cell in a fresh process)
and the fork server."""
