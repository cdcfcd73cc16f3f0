"""The runtime that hosts pipelines: the manager, the headless service, the console's operations, operator actions."""
