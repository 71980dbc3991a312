"""The guard: the taxonomy's rules, META_MODE, the shell scanner, the hook, pre-commit; stdlib and lab's top level only."""
