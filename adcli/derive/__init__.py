"""Derivatives beyond one sweep: symbolic, exact Hessians, finite differences."""
