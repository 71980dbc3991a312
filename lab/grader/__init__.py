"""The grader's home: the sandbox, the artifact loader, protected mode and its installed entry point."""
