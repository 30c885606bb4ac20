"""The bench's scenarios. Each module has NAME, add_arguments(parser), async run(ctx) -> dict,
report(result) and ok(result) -> bool."""
