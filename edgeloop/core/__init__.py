"""The pure core: one definition of every record, name and rule, stdlib only."""
