//! Dynamic update (stub).
