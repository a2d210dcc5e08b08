"""Placement: which worker gets a new sandbox. Pure: a snapshot in, a decision out."""

from lamina.placement.engine import Decision, PlacementRequest, Rejection, WorkerView, place

__all__ = ["Decision", "PlacementRequest", "Rejection", "WorkerView", "place"]
