"""The restore state machine's steps: plan, prepare targets, write parts, finalize."""
