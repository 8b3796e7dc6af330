"""Python versions of the CNI reference plugins."""
