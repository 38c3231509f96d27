//! Access rights carried by a capability: [`kaal_abi::Rights`], the one definition the
//! kernel and user space share.

pub use kaal_abi::Rights;
