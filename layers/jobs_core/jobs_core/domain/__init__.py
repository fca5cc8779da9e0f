"""The domain: the rules (state machine, models) and what a device, an operator and the schedule do, over the store."""
