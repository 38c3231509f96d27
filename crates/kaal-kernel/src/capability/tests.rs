//! Tests of the capability operations.
