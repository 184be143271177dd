"""The old place of the `flashsale` command, which lives in the top-level `cli` package now."""
