//! Access rules (stub).
