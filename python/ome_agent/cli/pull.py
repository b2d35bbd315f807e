"""``ome-agent pull SOURCE DEST``: fetch a model or a file, verified."""
