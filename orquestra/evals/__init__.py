"""Planning-quality and whole-run evaluation: suites, adapters, metrics and reports (`orquestra eval`)."""
