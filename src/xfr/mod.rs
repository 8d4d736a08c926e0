//! Transfers (stub).
