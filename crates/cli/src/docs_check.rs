//! The docs' command lines against the real command line: every `fgstp …` (or
//! `scripts/fgstp …`) line of a ```sh block in README.md and the book parses with the clap
//! definitions of this binary, and the book's table of model kinds is the registry's.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::Cli;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every Markdown page of the book.
fn documents() -> Vec<PathBuf> {
    let mut out = vec![workspace().join("README.md")];
    let mut pending = vec![workspace().join("docs/src")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The commands of the ```sh blocks of a Markdown text: (line number, command) with `\`
/// continuations joined and comments dropped.
fn shell_commands(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(lang) = trimmed.strip_prefix("```") {
            in_sh = !in_sh && matches!(lang.trim(), "sh" | "bash" | "shell" | "console");
            pending = None;
            continue;
        }
        if !in_sh {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        let code = match trimmed.find(" #") {
            Some(at) if !trimmed.starts_with('#') => &trimmed[..at],
            _ if trimmed.starts_with('#') => "",
            _ => trimmed,
        };
        if let Some(head) = code.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            pending = Some((start, joined));
        } else {
            joined.push_str(code);
            if !joined.trim().is_empty() {
                out.push((start, joined.trim().to_string()));
            }
        }
    }
    out
}

/// The `fgstp` invocations of one shell command (pipelines and `&&` lists split; leading
/// `VAR=value` assignments skipped), as argument lists without the program name.
fn fgstp_invocations(command: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for part in command.split(['|', ';']).flat_map(|p| p.split("&&")) {
        let Some(words) = shlex::split(part.trim()) else {
            continue;
        };
        let mut words = words.into_iter().skip_while(|w| {
            w.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
        });
        if let Some("fgstp" | "scripts/fgstp") = words.next().as_deref() {
            out.push(words.collect());
        }
    }
    out
}

#[test]
fn every_fgstp_line_in_the_docs_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (line, command) in shell_commands(&text) {
            for args in fgstp_invocations(&command) {
                checked += 1;
                let argv = std::iter::once("fgstp".to_string()).chain(args);
                if let Err(err) = Cli::try_parse_from(argv) {
                    if !matches!(
                        err.kind(),
                        clap::error::ErrorKind::DisplayHelp
                            | clap::error::ErrorKind::DisplayVersion
                    ) {
                        let rel = doc
                            .strip_prefix(workspace())
                            .unwrap_or(&doc)
                            .display()
                            .to_string();
                        let first = err
                            .to_string()
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        failures.push(format!("{rel}:{line}: {command}\n    {first}"));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "docs' command lines that do not parse:\n{}",
        failures.join("\n")
    );
    // The docs show dozens of commands; finding few means the block parsing broke.
    assert!(
        checked >= 30,
        "only {checked} fgstp command lines found in the docs"
    );
}

#[test]
fn the_books_kind_table_is_the_registry() {
    let page = workspace().join("docs/src/models.md");
    let text = std::fs::read_to_string(&page).unwrap();
    let (begin, end) = ("<!-- kinds:begin -->\n", "<!-- kinds:end -->");
    let start = text
        .find(begin)
        .expect("docs/src/models.md has <!-- kinds:begin -->")
        + begin.len();
    let stop = text[start..]
        .find(end)
        .expect("docs/src/models.md has <!-- kinds:end -->")
        + start;
    assert_eq!(
        &text[start..stop],
        fgstp_train::recipes::markdown_table(),
        "docs/src/models.md's kind table differs from the registry: paste `fgstp kinds --markdown`"
    );
}

#[test]
fn the_books_gallery_shows_every_element_the_generator_draws() {
    let page = workspace().join("docs/src/user-guide/data.md");
    let text = std::fs::read_to_string(&page).unwrap();
    for item in fgstp_data::synth::gallery::gallery(7, 32, 32, 1) {
        let link = format!("](../images/synth/{}.png)", item.name);
        assert!(
            text.contains(&link) && text.contains(item.caption),
            "docs/src/user-guide/data.md does not show the generator's element {:?} ({link}, {:?})",
            item.name,
            item.caption
        );
        let picture = workspace()
            .join("docs/src/images/synth")
            .join(format!("{}.png", item.name));
        assert!(
            picture.exists(),
            "{} is missing: run scripts/synth-gallery",
            picture.display()
        );
    }
}

#[test]
fn the_checker_joins_continuations_and_skips_comments_and_assignments() {
    let text = "x\n```sh\n# a comment\nFOO=1 fgstp eval --config a.toml \\\n  --weights w # note\nls | fgstp info\n```\n```text\nfgstp nonsense\n```\n";
    let commands = shell_commands(text);
    assert_eq!(
        commands,
        [
            (
                4,
                "FOO=1 fgstp eval --config a.toml  --weights w".to_string()
            ),
            (6, "ls | fgstp info".to_string())
        ]
    );
    let args: Vec<Vec<String>> = commands
        .iter()
        .flat_map(|(_, c)| fgstp_invocations(c))
        .collect();
    assert_eq!(args[0][..2], ["eval".to_string(), "--config".to_string()]);
    assert_eq!(args[1], ["info".to_string()]);
    assert!(Cli::try_parse_from(["fgstp", "eval", "--no-such-flag"]).is_err());
}
