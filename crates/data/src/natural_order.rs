//! Natural ("human") order of file names, as Python's `natsort.natsorted` (8.x, default
//! algorithm) orders them: `frame2` before `frame10`.
//!
//! natsort turns a name into alternating text and number chunks, always starting with a text
//! chunk (possibly empty): `"frame10.png"` → `("frame", 10, ".png")`. Keys compare like Python
//! tuples: chunk by chunk, text by code point, numbers by value, and a key that is a prefix of
//! the other comes first. Names whose keys are equal (`a01`, `a1`) keep no defined order in
//! natsort (it depends on the directory listing); here they fall back to plain string order so
//! the result is deterministic.

use std::cmp::Ordering;

enum Chunk<'a> {
    Text(&'a str),
    /// ASCII digits without leading zeros (empty for zero).
    Number(&'a str),
}

fn chunks(name: &str) -> Vec<Chunk<'_>> {
    let bytes = name.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_number = false;
    for (i, b) in bytes.iter().enumerate() {
        let digit = b.is_ascii_digit();
        if digit != in_number {
            push_chunk(&mut out, &name[start..i], in_number);
            start = i;
            in_number = digit;
        }
    }
    push_chunk(&mut out, &name[start..], in_number);
    out
}

fn push_chunk<'a>(out: &mut Vec<Chunk<'a>>, s: &'a str, number: bool) {
    if number {
        out.push(Chunk::Number(s.trim_start_matches('0')));
    } else if !s.is_empty() || out.is_empty() {
        // The leading text chunk is kept even when empty ("10a" → ("", 10, "a")), as natsort does.
        out.push(Chunk::Text(s));
    }
}

/// Compares two names in natural order (see the module docs).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ka, kb) = (chunks(a), chunks(b));
    for (x, y) in ka.iter().zip(kb.iter()) {
        let ord = match (x, y) {
            (Chunk::Text(x), Chunk::Text(y)) => x.cmp(y),
            (Chunk::Number(x), Chunk::Number(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
            // Keys alternate text/number from a text start, so positions always agree.
            (Chunk::Text(_), Chunk::Number(_)) => Ordering::Less,
            (Chunk::Number(_), Chunk::Text(_)) => Ordering::Greater,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ka.len().cmp(&kb.len()).then_with(|| a.cmp(b))
}

/// Sorts names in natural order.
pub fn natural_sort<S: AsRef<str>>(names: &mut [S]) {
    names.sort_by(|a, b| natural_cmp(a.as_ref(), b.as_ref()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value() {
        let mut v = vec!["frame10.png", "frame2.png", "frame1.png", "frame001.png"];
        natural_sort(&mut v);
        assert_eq!(
            v,
            ["frame001.png", "frame1.png", "frame2.png", "frame10.png"]
        );
    }
}
