//! The fuzz corpora, replayed on stable: every file of `fuzz/corpus/<target>/` through its
//! target, then a bounded number of mutations of them (byte flips, truncations, splices,
//! random bytes), so that `cargo xtask test` catches a parser that panics again on an
//! input the fuzzer once found. The libFuzzer runs themselves are nightly-only; see
//! `fuzz/README.md`.

use std::path::{Path, PathBuf};

use kaal_fuzz_targets::{TARGETS, Target};

/// Mutations run per target on top of the corpus (kept small: this runs unoptimised).
const MUTATIONS: usize = 10_000;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target)
}

/// The files of a target's corpus, sorted by name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("read corpus file");
            (path, bytes)
        })
        .collect()
}

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, t)| t)
        .expect("known target")
}

/// xorshift64*: a deterministic generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `seed`, possibly spliced with `other`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            // Flip a bit.
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            // Overwrite a byte or an aligned word with an edge value.
            1 if out.len() >= 4 => {
                let i = rng.below(out.len() - 3) & !3;
                let word: u32 = [0, 1, 0x7fff_ffff, 0x8000_0000, u32::MAX, 4, 0x1000][rng.below(7)];
                let bytes = if rng.below(2) == 0 {
                    word.to_le_bytes()
                } else {
                    word.to_be_bytes()
                };
                out[i..i + 4].copy_from_slice(&bytes);
            }
            // Truncate.
            2 => out.truncate(rng.below(out.len() + 1)),
            // Splice in a piece of another input.
            3 if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1).min(256);
                let at = rng.below(out.len() + 1);
                out.splice(at..at, other[from..from + len].iter().copied());
            }
            // Random bytes somewhere.
            4 if !out.is_empty() => {
                let i = rng.below(out.len());
                let end = (i + 1 + rng.below(16)).min(out.len());
                for byte in &mut out[i..end] {
                    *byte = rng.next() as u8;
                }
            }
            // A short random input.
            _ => {
                out = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            }
        }
    }
    out
}

/// Replays a target's corpus and `MUTATIONS` mutations of it.
fn replay(name: &str) {
    let run = target(name);
    let files = corpus(name);
    assert!(
        !files.is_empty(),
        "{}: empty corpus",
        corpus_dir(name).display()
    );
    for (path, bytes) in &files {
        eprintln!("{name}: {}", path.display());
        run(bytes);
    }
    let mut rng = Rng(0x4b61_614c_0000_0001 ^ name.len() as u64);
    for _ in 0..MUTATIONS {
        let (_, seed) = &files[rng.below(files.len())];
        let (_, other) = &files[rng.below(files.len())];
        run(&mutate(&mut rng, seed, other));
    }
}

#[test]
fn every_target_has_a_corpus_and_every_corpus_a_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fuzz/corpus")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut targets: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    targets.sort();
    assert_eq!(names, targets);
    // And one `cargo fuzz` target per body.
    let fuzz_targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz_targets");
    for name in &targets {
        assert!(
            fuzz_targets.join(format!("{name}.rs")).is_file(),
            "no fuzz/fuzz_targets/{name}.rs"
        );
    }
}

#[test]
fn boot_info() {
    replay("boot_info");
}

#[test]
fn archive() {
    replay("archive");
}

#[test]
fn system_description() {
    replay("system_description");
}

#[test]
fn startup_record() {
    replay("startup_record");
}

#[test]
fn elf_plan() {
    replay("elf_plan");
}

#[test]
fn device_tree() {
    replay("device_tree");
}

#[test]
fn ring_attach() {
    replay("ring_attach");
}
