"""CDK stacks: one per deployable environment shape."""
