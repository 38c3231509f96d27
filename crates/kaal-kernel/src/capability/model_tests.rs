//! Randomized model test.
