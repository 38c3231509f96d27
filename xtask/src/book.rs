//! The book in `docs/` (an mdBook: `docs/book.toml`, `docs/SUMMARY.md`) and the test that
//! keeps its code samples honest.
//!
//! Code blocks carry their purpose in the info string, after the language; mdBook ignores
//! what it does not know, so the rendered book still highlights them:
//!
//! | info string | meaning | checked by |
//! | --- | --- | --- |
//! | `rust,file=PATH` | create `PATH` in the project with this content | [`apply_chapter`] (applied chapters only) |
//! | `toml,file=PATH` | create `PATH` | [`apply_chapter`]; TOML syntax here |
//! | `toml,append=PATH` | append to `PATH` (e.g. `system.toml`) | [`apply_chapter`]; TOML syntax here |
//! | `text,session` | a shell session: lines after the prompt `kaal> ` are typed, the others must appear in the output (`...` matches any text) | [`apply_chapter`] returns both |
//! | `rust` | a complete component (`#![no_std]`, `#![no_main]`) | `cargo check` for `aarch64-unknown-none` against the `kaal-*` crates |
//! | `rust,kernel` | a complete kernel binary | `cargo check` for `aarch64-unknown-none-softfloat` against `kaal-kernel` |
//! | `toml,system` | a complete `system.toml` | `kaal_build::system::parse` |
//! | `toml,fragment` | part of a TOML file | TOML syntax |
//!
//! Lines of a `rust` block that start with `# ` are hidden in the rendered book (mdBook's
//! convention) and are part of what is compiled or written. Every `rust` block is compiled
//! by some test: a `file=` block only in an applied chapter ([`APPLIED_CHAPTERS`]), whose
//! files the template test writes into a generated project and builds; every other one by
//! [`test`]. A `rust` block with any other attribute (`ignore`, ...) and a `toml` block
//! without one of the attributes above are errors.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    path::{Component, Path, PathBuf},
};

use kaal_build::process;

use crate::{Result, Tally, args::Args, root};

/// The chapters a reader applies, in this order, to a project freshly generated from the
/// template (relative to [`docs_dir`]): their `file=`/`append=` blocks, applied with
/// [`apply_chapter`], add a working driver, service and channel.
pub const APPLIED_CHAPTERS: [&str; 2] = ["drivers.md", "services.md"];

/// The prompt of the generated system's shell.
pub const PROMPT: &str = "kaal> ";

/// Machine size `toml,system` blocks are checked for (MiB).
const SYSTEM_RAM_MIB: u64 = 256;

/// The book's source directory.
pub fn docs_dir() -> PathBuf {
    root().join("docs")
}

/// What a code block is for, from its info string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// `file=PATH`: create `PATH` in the project with the block's text.
    File(String),
    /// `append=PATH`: append the block's text to `PATH` in the project.
    Append(String),
    /// `session`: lines after [`PROMPT`] are input, the others expected output.
    Session,
    /// `rust` without attributes: a complete component, checked for the user target.
    Component,
    /// `rust,kernel`: a complete kernel binary, checked for the kernel target.
    Kernel,
    /// `toml,system`: a complete `system.toml`.
    System,
    /// `toml,fragment`: part of a TOML file, checked for syntax.
    Fragment,
    /// Any other block (`sh`, `text`, ...): not checked.
    Plain,
}

/// A fenced code block of a chapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Line of the opening fence (1-based).
    pub line: usize,
    /// The language: the info string's first word (`rust`, `toml`, `text`, ...).
    pub language: String,
    /// What it is for.
    pub kind: BlockKind,
    /// Its text as written to a file or compiled: the fence's indentation removed and, in
    /// `rust` blocks, mdBook's hidden lines (`# ...`) revealed. Ends with a newline unless
    /// empty.
    pub text: String,
}

/// A link in a chapter's prose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Line (1-based).
    pub line: usize,
    /// The target as written.
    pub target: String,
}

/// A chapter, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Its code blocks, in order.
    pub blocks: Vec<Block>,
    /// Its links (outside code), in order.
    pub links: Vec<Link>,
    /// The anchors of its headings (mdBook's ids).
    pub anchors: BTreeSet<String>,
}

/// What applying a chapter to a project gave: the files it touched, what to type into
/// the running system's shell and what must then appear in its output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chapter {
    /// Files created or appended to, relative to the project, in order.
    pub files: Vec<PathBuf>,
    /// Shell input lines (without the prompt), in order.
    pub input: Vec<String>,
    /// Lines the output must contain (each anywhere, in any order; `...` matches any
    /// text within the line).
    pub expect: Vec<String>,
}

impl Chapter {
    /// The input as one script, one command a line, for the shell's standard input.
    pub fn script(&self) -> String {
        self.input.iter().map(|line| format!("{line}\n")).collect()
    }

    /// The expected lines that no line of `output` matches (empty: all there).
    pub fn missing<'a>(&'a self, output: &str) -> Vec<&'a str> {
        self.expect
            .iter()
            .filter(|pattern| !output.lines().any(|line| line_matches(pattern, line)))
            .map(String::as_str)
            .collect()
    }

    /// Adds what `other` did after this chapter's.
    pub fn extend(&mut self, other: Chapter) {
        self.files.extend(other.files);
        self.input.extend(other.input);
        self.expect.extend(other.expect);
    }
}

/// Whether `line` contains `pattern`, where `...` in the pattern matches any text.
pub fn line_matches(pattern: &str, line: &str) -> bool {
    let mut rest = line;
    let mut pieces = pattern.split("...");
    let Some(first) = pieces.next() else {
        return true;
    };
    let Some(at) = rest.find(first) else {
        return false;
    };
    rest = &rest[at + first.len()..];
    for piece in pieces {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Applies a chapter to a project: creates the files of its `file=` blocks and appends
/// its `append=` blocks to theirs (which must exist), in the chapter's order, and returns
/// the files, the shell input and the expected output of its `session` blocks.
///
/// ```ignore
/// let mut done = book::Chapter::default();
/// for chapter in book::APPLIED_CHAPTERS {
///     done.extend(book::apply_chapter(&project, &book::docs_dir().join(chapter))?);
/// }
/// // run the project with `done.script()` (then `poweroff`) on stdin, then:
/// let missing = done.missing(&output);
/// ```
///
/// # Errors
///
/// The chapter cannot be read or does not parse ([`parse`]), a path is absolute or leaves
/// the project, or a file cannot be written.
pub fn apply_chapter(project: &Path, chapter: &Path) -> Result<Chapter> {
    let source = std::fs::read_to_string(chapter)
        .map_err(|e| format!("cannot read {}: {e}", chapter.display()))?;
    let parsed = parse(&source).map_err(|e| format!("{}:{e}", chapter.display()))?;
    let mut done = Chapter::default();
    for block in parsed.blocks {
        let place = format!("{}:{}", chapter.display(), block.line);
        match &block.kind {
            BlockKind::File(path) => {
                let relative = project_path(path).map_err(|e| format!("{place}: {e}"))?;
                let target = project.join(&relative);
                if let Some(dir) = target.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("{place}: cannot create {}: {e}", dir.display()))?;
                }
                std::fs::write(&target, &block.text)
                    .map_err(|e| format!("{place}: cannot write {}: {e}", target.display()))?;
                done.files.push(relative);
            }
            BlockKind::Append(path) => {
                let relative = project_path(path).map_err(|e| format!("{place}: {e}"))?;
                let target = project.join(&relative);
                let mut text = std::fs::read_to_string(&target)
                    .map_err(|e| format!("{place}: cannot append to {}: {e}", target.display()))?;
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push('\n');
                text.push_str(&block.text);
                std::fs::write(&target, text)
                    .map_err(|e| format!("{place}: cannot write {}: {e}", target.display()))?;
                done.files.push(relative);
            }
            BlockKind::Session => {
                let (input, expect) = session(&block.text);
                done.input.extend(input);
                done.expect.extend(expect);
            }
            _ => {}
        }
    }
    Ok(done)
}

/// Applies every chapter of [`APPLIED_CHAPTERS`] to `project`, in order.
///
/// # Errors
///
/// As [`apply_chapter`].
pub fn apply_chapters(project: &Path) -> Result<Chapter> {
    let mut done = Chapter::default();
    for chapter in APPLIED_CHAPTERS {
        done.extend(apply_chapter(project, &docs_dir().join(chapter))?);
    }
    Ok(done)
}

/// A relative path that stays inside the project.
fn project_path(path: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(path);
    if path.as_os_str().is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "`{}` must be a relative path inside the project",
            path.display()
        ));
    }
    Ok(path)
}

/// Splits a session block into input lines (after the prompt) and expected lines.
fn session(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut input, mut expect) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if let Some(command) = line.strip_prefix(PROMPT.trim_end()) {
            input.push(command.trim().to_owned());
        } else if !line.trim().is_empty() {
            expect.push(line.trim().to_owned());
        }
    }
    (input, expect)
}

/// Parses a chapter's Markdown: its code blocks with their purpose, its links and its
/// headings' anchors.
///
/// # Errors
///
/// `LINE: problem` for an unclosed code block, an unknown or misplaced attribute, a `rust`
/// block that nothing would compile, a `toml` block that does not say what it is, or a
/// session block without input.
pub fn parse(source: &str) -> std::result::Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut lines = source.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        let fence = trimmed.len() - trimmed.trim_start_matches('`').len();
        if fence < 3 {
            if let Some(title) = trimmed.strip_prefix('#') {
                let title = title.trim_start_matches('#');
                if title.starts_with(' ') {
                    parsed.anchors.insert(anchor(title.trim()));
                }
            }
            parsed
                .links
                .extend(links(line).into_iter().map(|target| Link {
                    line: index + 1,
                    target,
                }));
            continue;
        }
        let info = &trimmed[fence..];
        let (language, kind) = info_string(info).map_err(|e| format!("{}: {e}", index + 1))?;
        let mut body = Vec::new();
        let mut closed = false;
        for (_, line) in lines.by_ref() {
            let inner = line.trim_start();
            if inner.len() - inner.trim_start_matches('`').len() >= fence
                && inner.trim_start_matches('`').trim().is_empty()
            {
                closed = true;
                break;
            }
            let dedented = line
                .get(indent.min(line.len() - inner.len())..)
                .unwrap_or(line);
            body.push(if language == "rust" {
                reveal(dedented)
            } else {
                dedented.to_owned()
            });
        }
        if !closed {
            return Err(format!("{}: code block not closed", index + 1));
        }
        let mut text = body.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        if kind == BlockKind::Session && session(&text).0.is_empty() {
            return Err(format!(
                "{}: a session block needs at least one `{PROMPT}` line",
                index + 1
            ));
        }
        parsed.blocks.push(Block {
            line: index + 1,
            language,
            kind,
            text,
        });
    }
    Ok(parsed)
}

/// mdBook's hidden lines in `rust` blocks: `# code` is shown as nothing and compiled as
/// `code`; `##` stands for a literal `#`.
fn reveal(line: &str) -> String {
    let indent = &line[..line.len() - line.trim_start().len()];
    let inner = line.trim_start();
    if let Some(rest) = inner.strip_prefix("##") {
        format!("{indent}#{rest}")
    } else if inner == "#" {
        String::new()
    } else if let Some(rest) = inner.strip_prefix("# ") {
        format!("{indent}{rest}")
    } else {
        line.to_owned()
    }
}

/// The language and purpose of an info string.
fn info_string(info: &str) -> std::result::Result<(String, BlockKind), String> {
    let mut words = info
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|w| !w.is_empty());
    let language = words.next().unwrap_or("").to_owned();
    let attributes: Vec<&str> = words.collect();
    let kind = match (language.as_str(), attributes.as_slice()) {
        (_, [file])
            if file.starts_with("file=") && matches!(language.as_str(), "rust" | "toml") =>
        {
            BlockKind::File(file["file=".len()..].to_owned())
        }
        ("toml", [append]) if append.starts_with("append=") => {
            BlockKind::Append(append["append=".len()..].to_owned())
        }
        ("text", ["session"]) => BlockKind::Session,
        ("rust", []) => BlockKind::Component,
        ("rust", ["kernel"]) => BlockKind::Kernel,
        ("toml", ["system"]) => BlockKind::System,
        ("toml", ["fragment"]) => BlockKind::Fragment,
        ("rust", _) => {
            return Err(format!(
                "`{info}`: a rust block is a component (`rust`), a kernel (`rust,kernel`) or a \
                 file of an applied chapter (`rust,file=PATH`); every one is compiled"
            ));
        }
        ("toml", []) => {
            return Err(
                "say what this TOML is: `toml,system`, `toml,fragment`, `toml,file=PATH` or \
                 `toml,append=PATH`"
                    .to_owned(),
            );
        }
        (_, []) => BlockKind::Plain,
        _ => return Err(format!("unknown attributes in `{info}`")),
    };
    if let BlockKind::File(path) | BlockKind::Append(path) = &kind
        && path.is_empty()
    {
        return Err(format!("`{info}`: empty path"));
    }
    Ok((language, kind))
}

/// mdBook's id for a heading: lower case, alphanumerics, `-` and `_` kept, spaces
/// become `-`, everything else dropped.
fn anchor(title: &str) -> String {
    let text = strip_code_and_links(title);
    text.chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_ascii_lowercase())
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// A heading's text as rendered: backticks removed, `[text](target)` as `text`.
fn strip_code_and_links(title: &str) -> String {
    let mut out = String::new();
    let mut rest = title;
    while let Some(start) = rest.find("](") {
        let Some(end) = rest[start..].find(')') else {
            break;
        };
        out.push_str(&rest[..start]);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out.replace(['`', '['], "")
}

/// The targets of inline links `[text](target)` in a line of prose, outside code spans.
fn links(line: &str) -> Vec<String> {
    let mut prose = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            prose.push_str(part);
        }
        prose.push(' ');
    }
    let mut found = Vec::new();
    let mut rest = prose.as_str();
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else {
            break;
        };
        let target = after[..end].split_whitespace().next().unwrap_or("");
        found.push(target.to_owned());
        rest = &after[end..];
    }
    found
}

/// The chapter files `SUMMARY.md` links to, in order.
///
/// # Errors
///
/// `SUMMARY.md` cannot be read or parsed.
pub fn summary(docs: &Path) -> Result<Vec<String>> {
    let path = docs.join("SUMMARY.md");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let parsed = parse(&text).map_err(|e| format!("{}:{e}", path.display()))?;
    Ok(parsed.links.into_iter().map(|l| l.target).collect())
}

/// Problems with the book as a whole: `SUMMARY.md`'s chapters exist and every Markdown
/// file of `docs/` is one of them, each chapter parses, and every relative link (and
/// anchor into a chapter) resolves. One entry per problem, `file:line: problem`.
pub fn check_structure(docs: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let chapters = match summary(docs) {
        Ok(chapters) => chapters,
        Err(e) => return vec![e.to_string()],
    };
    let listed: BTreeSet<PathBuf> = chapters.iter().map(|c| docs.join(c)).collect();
    for chapter in &chapters {
        if !docs.join(chapter).is_file() {
            problems.push(format!(
                "{}: chapter `{chapter}` does not exist",
                docs.join("SUMMARY.md").display()
            ));
        }
    }
    for file in markdown_files(docs) {
        if file.file_name().is_some_and(|n| n != "SUMMARY.md") && !listed.contains(&file) {
            problems.push(format!("{}: not in SUMMARY.md", file.display()));
        }
    }
    for file in markdown_files(docs) {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        let parsed = match parse(&text) {
            Ok(parsed) => parsed,
            Err(e) => {
                problems.push(format!("{}:{e}", file.display()));
                continue;
            }
        };
        for link in &parsed.links {
            if let Err(problem) = check_link(&file, &parsed, &link.target) {
                problems.push(format!("{}:{}: {problem}", file.display(), link.line));
            }
        }
        let applied = APPLIED_CHAPTERS
            .iter()
            .any(|c| docs.join(c) == file.as_path());
        for block in &parsed.blocks {
            if let BlockKind::File(_) | BlockKind::Append(_) = block.kind
                && !applied
            {
                problems.push(format!(
                    "{}:{}: `file=`/`append=` blocks belong in an applied chapter (book::APPLIED_CHAPTERS), where a test applies them",
                    file.display(),
                    block.line
                ));
            }
        }
    }
    problems
}

/// Whether a link from `file` resolves: web and mail links are not followed; a path must
/// exist (relative to `file`), and an anchor into a Markdown file must be one of its
/// headings.
fn check_link(file: &Path, parsed: &Parsed, target: &str) -> std::result::Result<(), String> {
    if target.is_empty() {
        return Err("empty link".to_owned());
    }
    if target.contains("://") || target.starts_with("mailto:") {
        return Ok(());
    }
    let (path, fragment) = match target.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (target, None),
    };
    if path.is_empty() {
        let fragment = fragment.unwrap_or("");
        return if parsed.anchors.contains(fragment) {
            Ok(())
        } else {
            Err(format!("no heading `#{fragment}` in this chapter"))
        };
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let resolved = dir.join(path);
    if !resolved.exists() {
        return Err(format!(
            "link `{target}`: {} does not exist",
            resolved.display()
        ));
    }
    if let Some(fragment) = fragment
        && resolved.extension().is_some_and(|e| e == "md")
    {
        let text = std::fs::read_to_string(&resolved).map_err(|e| e.to_string())?;
        let target_parsed = parse(&text).map_err(|e| format!("{}:{e}", resolved.display()))?;
        if !target_parsed.anchors.contains(fragment) {
            return Err(format!(
                "link `{target}`: no heading `#{fragment}` in {}",
                resolved.display()
            ));
        }
    }
    Ok(())
}

/// The Markdown files directly in `docs`, sorted.
fn markdown_files(docs: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(docs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
}

/// A code block to compile or check, with where it comes from.
struct Sample {
    /// `chapter.md:LINE`.
    place: String,
    /// The name it gets in the throwaway crate.
    name: String,
    block: Block,
}

/// Every block of every chapter of `docs`, with its place.
fn samples(docs: &Path) -> std::result::Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for file in markdown_files(docs) {
        let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
        let parsed = parse(&text).map_err(|e| format!("{}:{e}", file.display()))?;
        let stem = file
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .replace(|c: char| !c.is_alphanumeric(), "-")
            })
            .unwrap_or_default();
        for block in parsed.blocks {
            samples.push(Sample {
                place: format!("{}:{}", file.display(), block.line),
                name: format!("{stem}-{}", block.line),
                block,
            });
        }
    }
    Ok(samples)
}

/// Checks the TOML blocks: complete system descriptions with `kaal_build::system`, the
/// rest (fragments, files, appends) for TOML syntax.
fn check_toml(samples: &[Sample]) -> Tally {
    let mut tally = Tally::default();
    for sample in samples.iter().filter(|s| s.block.language == "toml") {
        let path = Path::new(&sample.place);
        let result = match &sample.block.kind {
            BlockKind::System => {
                kaal_build::system::parse(path, &sample.block.text, SYSTEM_RAM_MIB << 20).map(drop)
            }
            // Reads the TOML (and only the `driver` keys, which need not be there).
            _ => kaal_build::system::driver_declarations(path, &sample.block.text).map(drop),
        };
        if let Err(e) = &result {
            eprintln!("book: {}: {e}", sample.place);
        }
        tally += Tally::one(result.is_ok());
    }
    tally
}

/// The `system.toml` the applied chapters are checked against: the template's shell,
/// the one component they refer to.
const APPLIED_BASE: &str = "[system]\nname = \"book\"\n\n[components.shell]\n";

/// Applies the applied chapters to a scratch project holding only [`APPLIED_BASE`] and
/// checks the `system.toml` that results with `kaal_build::system`, and that the chapters
/// give the template test something to type and to look for.
fn check_applied() -> Tally {
    let project = root().join("target").join("book").join("applied");
    let _ = std::fs::remove_dir_all(&project);
    let result = std::fs::create_dir_all(&project)
        .and_then(|()| std::fs::write(project.join("system.toml"), APPLIED_BASE))
        .map_err(|e| e.into())
        .and_then(|()| apply_chapters(&project))
        .and_then(|chapter| {
            if chapter.input.is_empty() || chapter.expect.is_empty() {
                return Err("the applied chapters have no session to check".into());
            }
            kaal_build::system::load(&project.join("system.toml"), SYSTEM_RAM_MIB << 20)?;
            Ok(chapter)
        });
    match result {
        Ok(chapter) => {
            println!(
                "book: applied chapters write {} files; system.toml checks; {} expected lines after typing:\n{}",
                chapter.files.len(),
                chapter.expect.len(),
                chapter.script().trim_end()
            );
            Tally::one(true)
        }
        Err(e) => {
            eprintln!("book: applying {APPLIED_CHAPTERS:?}: {e}");
            Tally::one(false)
        }
    }
}

/// A throwaway crate with one binary per sample, checked for `target`.
struct SampleCrate<'a> {
    /// Directory name under `target/book/`.
    name: &'a str,
    /// Target triple.
    target: &'a str,
    /// `[dependencies]` lines.
    dependencies: &'a [&'a str],
}

impl SampleCrate<'_> {
    /// Writes the crate and runs `cargo check`; one test per sample, failed if an error
    /// names its file (or every one, if the check fails otherwise).
    fn check(&self, samples: &[&Sample]) -> Tally {
        if samples.is_empty() {
            return Tally::default();
        }
        let base = root().join("target").join("book");
        let dir = base.join(self.name);
        match self.write(&dir, samples) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("book: cannot write {}: {e}", dir.display());
                return Tally::one(false);
            }
        }
        let components = base.join("empty-archive.bin");
        if let Err(e) = std::fs::write(&components, []) {
            eprintln!("book: cannot write {}: {e}", components.display());
            return Tally::one(false);
        }
        let mut cmd = process::cargo();
        cmd.current_dir(&dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("CARGO_TARGET_DIR", base.join("target"))
            .env(kaal_build::COMPONENTS_ENV, &components)
            .args([
                "check",
                "--bins",
                "--message-format",
                "short",
                "--target",
                self.target,
            ]);
        println!("$ (cd {}; {})", dir.display(), process::display(&cmd));
        let output = match process::output(&mut cmd) {
            Ok(output) => output,
            Err(e) => {
                eprintln!("book: {e}");
                return Tally::one(false);
            }
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            for sample in samples {
                println!("book: {} compiles", sample.place);
            }
            return Tally {
                passed: samples.len() as u32,
                failed: 0,
            };
        }
        eprintln!("{stderr}");
        let mut tally = Tally::default();
        for sample in samples {
            let file = format!("src/bin/{}.rs", sample.name);
            let failed = stderr.lines().any(|l| l.contains(&file));
            if failed {
                eprintln!(
                    "book: {} does not compile (line N of {file} is line {} + N of the chapter)",
                    sample.place, sample.block.line
                );
            }
            tally += Tally::one(!failed);
        }
        if tally.failed == 0 {
            eprintln!("book: cargo check failed in {}", dir.display());
            tally.failed += 1;
        }
        tally
    }

    fn write(&self, dir: &Path, samples: &[&Sample]) -> std::io::Result<()> {
        let bin = dir.join("src").join("bin");
        if bin.exists() {
            std::fs::remove_dir_all(&bin)?;
        }
        std::fs::create_dir_all(&bin)?;
        let mut manifest = format!(
            "# Written by `cargo xtask test` (book): the code samples of docs/, one binary each.\n\
             [package]\nname = \"book-{}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\nautobins = false\n\n",
            self.name
        );
        for sample in samples {
            let _ = write!(
                manifest,
                "[[bin]]\nname = \"{0}\"\npath = \"src/bin/{0}.rs\"\ntest = false\nbench = false\n\n",
                sample.name
            );
            std::fs::write(bin.join(format!("{}.rs", sample.name)), &sample.block.text)?;
        }
        manifest.push_str("[dependencies]\n");
        let crates = root().join("crates");
        for dependency in self.dependencies {
            let _ = writeln!(
                manifest,
                "{dependency} = {{ path = {:?} }}",
                crates.join(dependency).display().to_string()
            );
        }
        manifest.push_str("\n[profile.dev]\npanic = \"abort\"\n\n[workspace]\n");
        std::fs::write(dir.join("Cargo.toml"), manifest)
    }
}

/// The `book` step of `cargo xtask test`: the book's structure and links
/// ([`check_structure`]), its TOML blocks, and every `rust` block compiled (components
/// for the user target, kernels for the kernel target); the `file=` blocks of the applied
/// chapters are compiled by the template test, which applies them to a generated project.
pub fn test(_args: &Args) -> Tally {
    let docs = docs_dir();
    let mut tally = Tally::default();
    let problems = check_structure(&docs);
    for problem in &problems {
        eprintln!("book: {problem}");
    }
    tally += Tally::one(problems.is_empty());
    let samples = match samples(&docs) {
        Ok(samples) => samples,
        Err(e) => {
            eprintln!("book: {e}");
            tally += Tally::one(false);
            return tally;
        }
    };
    tally += check_toml(&samples);
    tally += check_applied();
    if let Err(e) = kaal_build::tools::ensure_rust_targets(&[
        kaal_build::USER_TARGET,
        kaal_build::KERNEL_TARGET,
    ]) {
        eprintln!("book: {e}");
        tally += Tally::one(false);
        return tally;
    }
    let of = |kind: BlockKind| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| s.block.language == "rust" && s.block.kind == kind)
            .collect()
    };
    tally += SampleCrate {
        name: "components",
        target: kaal_build::USER_TARGET,
        dependencies: &[
            "kaal-abi",
            "kaal-bootinfo",
            "kaal-dddk",
            "kaal-ipc",
            "kaal-user",
        ],
    }
    .check(&of(BlockKind::Component));
    tally += SampleCrate {
        name: "kernels",
        target: kaal_build::KERNEL_TARGET,
        dependencies: &["kaal-kernel"],
    }
    .check(&of(BlockKind::Kernel));
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAPTER: &str = "\
# A chapter

Some text with a [link](other.md#a-heading) and `[not](a-link.md)`.

## The `fwcfg` driver: part 2

```rust,file=components/x/src/main.rs
#![no_std]
# // hidden
fn main() {}
```

```toml,append=system.toml
[components.x]
```

  ```text,session
  kaal> call x 1
  reply: [..., 0, 0, 0]
  ```

```rust,kernel
#![no_std]
```

```sh
cargo xtask run
```
";

    #[test]
    fn parses_blocks_with_their_purpose() {
        let parsed = parse(CHAPTER).unwrap();
        let kinds: Vec<_> = parsed.blocks.iter().map(|b| b.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                BlockKind::File("components/x/src/main.rs".into()),
                BlockKind::Append("system.toml".into()),
                BlockKind::Session,
                BlockKind::Kernel,
                BlockKind::Plain,
            ]
        );
        assert_eq!(parsed.blocks[0].line, 7);
        assert_eq!(
            parsed.blocks[0].text,
            "#![no_std]\n// hidden\nfn main() {}\n"
        );
        assert_eq!(
            parsed.blocks[2].text,
            "kaal> call x 1\nreply: [..., 0, 0, 0]\n"
        );
        assert_eq!(parsed.blocks[4].language, "sh");
    }

    #[test]
    fn finds_links_outside_code_and_heading_anchors() {
        let parsed = parse(CHAPTER).unwrap();
        let targets: Vec<_> = parsed.links.iter().map(|l| l.target.as_str()).collect();
        assert_eq!(targets, ["other.md#a-heading"]);
        assert!(parsed.anchors.contains("a-chapter"));
        assert!(parsed.anchors.contains("the-fwcfg-driver-part-2"));
    }

    #[test]
    fn refuses_blocks_nothing_would_check() {
        for (source, problem) in [
            ("```rust,ignore\n```\n", "every one is compiled"),
            ("```rust,no_run\n```\n", "every one is compiled"),
            ("```toml\n```\n", "say what this TOML is"),
            ("```text,sesion\n```\n", "unknown attributes"),
            ("```text,session\nreply\n```\n", "needs at least one"),
            ("```rust\nfn main() {}\n", "not closed"),
            ("```toml,file=\n```\n", "empty path"),
        ] {
            let error = parse(source).unwrap_err();
            assert!(error.contains(problem), "{source:?}: {error}");
            assert!(error.starts_with("1: "), "{error}");
        }
    }

    #[test]
    fn reveals_hidden_lines_in_rust_only() {
        assert_eq!(reveal("# let x = 1;"), "let x = 1;");
        assert_eq!(reveal("    # x"), "    x");
        assert_eq!(reveal("#"), "");
        assert_eq!(reveal("## not hidden"), "# not hidden");
        assert_eq!(reveal("#[derive(Driver)]"), "#[derive(Driver)]");
        assert_eq!(reveal("#![no_std]"), "#![no_std]");
        let parsed = parse("```toml,fragment\n# a comment\n```\n").unwrap();
        assert_eq!(parsed.blocks[0].text, "# a comment\n");
    }

    #[test]
    fn matches_expected_lines_with_wildcards() {
        assert!(line_matches(
            "reply: [..., 0, 0, 0]",
            "kaal> reply: [9, 0, 0, 0]"
        ));
        assert!(line_matches("reply: [42, 0, 0, 0]", "reply: [42, 0, 0, 0]"));
        assert!(!line_matches(
            "reply: [42, 0, 0, 0]",
            "reply: [41, 0, 0, 0]"
        ));
        assert!(!line_matches("a...b", "b a"));
        let chapter = Chapter {
            expect: vec!["logger: greeting 41".into(), "reply: [...]".into()],
            ..Chapter::default()
        };
        assert_eq!(chapter.missing("x\nreply: [1]\n"), ["logger: greeting 41"]);
        assert!(
            chapter
                .missing("reply: [1]\nlogger: greeting 41")
                .is_empty()
        );
    }

    #[test]
    fn applies_files_appends_and_sessions() {
        let project = std::env::temp_dir().join(format!("kaal-book-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&project);
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("system.toml"), "[system]\nname = \"x\"").unwrap();
        let chapter_path = project.join("chapter.md");
        std::fs::write(&chapter_path, CHAPTER).unwrap();
        let chapter = apply_chapter(&project, &chapter_path).unwrap();
        assert_eq!(
            chapter.files,
            [
                PathBuf::from("components/x/src/main.rs"),
                PathBuf::from("system.toml")
            ]
        );
        assert_eq!(chapter.script(), "call x 1\n");
        assert_eq!(chapter.expect, ["reply: [..., 0, 0, 0]"]);
        assert_eq!(
            std::fs::read_to_string(project.join("system.toml")).unwrap(),
            "[system]\nname = \"x\"\n\n[components.x]\n"
        );
        assert_eq!(
            std::fs::read_to_string(project.join("components/x/src/main.rs")).unwrap(),
            "#![no_std]\n// hidden\nfn main() {}\n"
        );
        std::fs::write(&chapter_path, "```rust,file=../escape.rs\n```\n").unwrap();
        assert!(apply_chapter(&project, &chapter_path).is_err());
        std::fs::write(&chapter_path, "```toml,append=missing.toml\n```\n").unwrap();
        assert!(apply_chapter(&project, &chapter_path).is_err());
        std::fs::remove_dir_all(&project).unwrap();
    }

    /// The book in this repository: its structure, links and annotations (the compiling
    /// is the `book` step of `cargo xtask test`).
    #[test]
    fn the_book_is_consistent() {
        let problems = check_structure(&docs_dir());
        assert!(problems.is_empty(), "{problems:#?}");
        for chapter in APPLIED_CHAPTERS {
            let text = std::fs::read_to_string(docs_dir().join(chapter)).unwrap();
            let parsed = parse(&text).unwrap();
            assert!(
                parsed.blocks.iter().any(|b| b.kind == BlockKind::Session),
                "{chapter} has no session to check"
            );
        }
    }
}
