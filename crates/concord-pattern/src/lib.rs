//! STIX patterning language (placeholder until the parser lands).
