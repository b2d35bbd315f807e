//! safetensors header parser (8-byte little-endian length + JSON header).
