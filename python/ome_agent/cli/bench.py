"""``ome-agent bench SOURCE``: sweep transfer settings against the user's own source."""
