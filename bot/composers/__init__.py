"""Composers: turn a classified, retrieved customer turn into the reply that is sent."""
