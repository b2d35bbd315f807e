//! Error type shared by the engine and the safetensors parser. Converted to
//! Python exceptions in exactly one place (`py::errors`).
