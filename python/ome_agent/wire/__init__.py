"""OME's wire format: what the agent writes for OME's readers (docs/wire.md).

``naming``: node label keys, ConfigMap data keys and the ConfigMap's metadata;
``entry``: the JSON value of one model's ConfigMap entry, written and read.
Pure: the adapters (layer 5) do the API calls.
"""
