"""Record-level restore and backtrack (issue 28): the items a selector names, in the CLI and the restore machine."""
