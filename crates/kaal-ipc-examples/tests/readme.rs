//! The kaal-ipc README shows the `memfd_pair` program as it is.

#![forbid(unsafe_code)]

const README: &str = include_str!("../../kaal-ipc/README.md");
const PROGRAM: &str = include_str!("../src/bin/memfd_pair.rs");

/// The body of the first code block opened by `fence` after `heading`.
fn block_after<'a>(text: &'a str, heading: &str, fence: &str) -> &'a str {
    let section = &text[text.find(heading).expect("heading in the README")..];
    let start = section.find(fence).expect("code block in the section") + fence.len();
    let body = &section[start..];
    &body[..body.find("\n```\n").expect("closed code block") + 1]
}

#[test]
fn readme_shows_the_memfd_pair_program_unchanged() {
    let shown = block_after(README, "\n## Between processes\n", "```rust,no_run\n");
    if shown != PROGRAM {
        let (line, (readme, program)) = shown
            .lines()
            .chain(std::iter::repeat("<end>"))
            .zip(PROGRAM.lines().chain(std::iter::repeat("<end>")))
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .expect("a differing line");
        panic!(
            "the README's \"Between processes\" program differs from src/bin/memfd_pair.rs \
             at line {}:\n  README:  {readme}\n  program: {program}\n\
             Copy the program into the README block.",
            line + 1
        );
    }
}
