"""The guard: the taxonomy's rules, META_MODE, the shell scanner, the agent hook and pre-commit. Standard library and lab's top level only: it runs on every agent tool call."""
