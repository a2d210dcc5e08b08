"""Sandboxes: one isolated process tree per function version instance, with the Runtime API."""
