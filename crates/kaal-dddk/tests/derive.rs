//! `#[derive(Driver)]` against the real runtime: a full driver compiles and its
//! metadata is right; each misuse is one error at the offending span.
//!
//! After an intended change of a message, regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p kaal-dddk --test derive` and review the diff.

#[test]
fn derive_driver() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
