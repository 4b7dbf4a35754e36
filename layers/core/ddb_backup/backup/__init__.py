"""The backup state machine's steps: plan, scan a segment, finalize a table."""
