//! Messages captured from real speakers.
