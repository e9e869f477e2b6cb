"""The scenario harness: a World of cloud and devices, named checks, and run reports."""
