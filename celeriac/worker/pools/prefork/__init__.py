"""Prefork: parent-fed (``pool``), direct-consuming children (``direct``), what they share."""
