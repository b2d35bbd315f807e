//! Transfer engine: parallel ranged HTTP GETs into a preallocated file,
//! resume journal, retries, streaming digests, progress counters.
