//! Capabilities: typed, rights-bearing references to kernel objects (work in progress).
